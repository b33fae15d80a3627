"""Small corpora bundled with charlm (installed as ``charlm.corpora``); see README.md here."""
