"""Training end to end through the Python API: it learns, it is reproducible, it resumes exactly."""
import math

import numpy as np
import pytest

import charlm
import charlm.training.trainer
from charlm.store import checkpoint
from charlm.config import Config
from charlm.text.corpus import detect_mode, read_corpus
from charlm.errors import TrainingDiverged, UsageError
from charlm.network.engine import Engine
from charlm.scoring.scorer import score_file
from charlm.training.trainer import learning_rate, new_trainer


def run(corpus, out, **options):
    trainer = new_trainer(str(corpus) if corpus else None, str(out), **options)
    trainer.run()
    return trainer


def test_tiny_corpus_is_overfit_to_near_zero_loss(tmp_path):
    corpus = tmp_path / "abc.txt"
    corpus.write_text("abcdefgh\n" * 30)          # one line, repeated: fully predictable
    trainer = run(corpus, tmp_path / "m.npz", cell="lstm", hidden_size=32, num_layers=2,
                  steps=300, val_frac=0.0, dropout=0.0, lr=1e-2, batch_size=10, seed=1)
    x, y, state = trainer.dataset.train.batch(0, 0)[0] + (None,)
    logp = Engine(trainer.network).log_probs(x, y, trainer.network.zero_state(x.shape[1]))
    assert -logp[y >= 0].mean() < 0.05       # from ln(11) = 2.4 at the start
    # nothing held out, so no validation: the training loss is the mean over the whole run
    assert trainer.run_state.history == []
    assert 0.05 < trainer.run_state.train_loss < math.log(11)


def test_training_loss_falls_on_the_bundled_corpus(tmp_path):
    trainer = run(None, tmp_path / "m.npz", hidden_size=64, steps=120, eval_every=40, seed=5)
    vals = [r.val_loss for r in trainer.run_state.history]
    assert trainer.config.mode == "lines"
    assert "\n" not in trainer.dataset.vocab.tokens          # it separates lines; <EOS> stands for it
    assert len(vals) == 3
    assert vals[-1] < vals[0] - 0.3
    assert vals[-1] < math.log(len(trainer.dataset.vocab)) - 0.8   # far below a uniform guess


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_same_seed_gives_the_same_loss_curve(tmp_path, prose_file, tiny, cell):
    runs = [run(prose_file, tmp_path / f"{k}.npz", cell=cell, steps=30, eval_every=10, dropout=0.2,
                **tiny) for k in range(2)]
    curves = [[(r.train_loss, r.val_loss) for r in t.run_state.history] for t in runs]
    assert len(curves[0]) == 3 and curves[0] == curves[1]
    assert np.array_equal(runs[0].params.flat, runs[1].params.flat)


@pytest.mark.parametrize("mode,corpus", [("stream", "prose_file"), ("lines", "names_file")])
def test_resume_continues_bit_for_bit(tmp_path, request, tiny, mode, corpus):
    corpus = request.getfixturevalue(corpus)
    whole = run(corpus, tmp_path / "whole.npz", steps=40, dropout=0.3, eval_every=15, **tiny)
    run(corpus, tmp_path / "half.npz", steps=20, dropout=0.3, eval_every=15, **tiny)
    resumed = new_trainer(str(corpus), str(tmp_path / "half.npz"), resume=True, steps=40)
    resumed.run()
    assert whole.config.mode == mode
    assert np.array_equal(whole.params.flat, resumed.params.flat)
    assert sorted(whole.optimizer.moments) == ["average", "m", "v"]
    for name in whole.optimizer.moments:
        assert np.array_equal(whole.optimizer.moments[name], resumed.optimizer.moments[name])
    # the same validation losses where both validated (the stopped run also validated at step 20)
    val = [{r.step: r.val_loss for r in t.run_state.history} for t in (whole, resumed)]
    assert val[0] == {step: loss for step, loss in val[1].items() if step != 20}
    saved = [checkpoint.load(str(tmp_path / f), True) for f in ("whole.npz", "half.npz")]
    assert np.array_equal(saved[0].training.params, saved[1].training.params)


def test_cold_starts_change_the_run_and_resume_bit_for_bit(tmp_path, prose_file, names_file,
                                                          tiny):
    options = dict(steps=30, eval_every=15, cold_starts=0.5, **tiny)
    whole = run(prose_file, tmp_path / "whole.npz", **options)
    plain = run(prose_file, tmp_path / "plain.npz", **dict(options, cold_starts=0.0))
    assert not np.array_equal(whole.params.flat, plain.params.flat)
    run(prose_file, tmp_path / "half.npz", **dict(options, steps=15))
    resumed = new_trainer(str(prose_file), str(tmp_path / "half.npz"), resume=True, steps=30)
    resumed.run()
    assert resumed.config.cold_starts == 0.5
    assert np.array_equal(whole.params.flat, resumed.params.flat)
    with pytest.raises(UsageError, match="--cold-starts .* lines mode"):
        run(names_file, tmp_path / "lines.npz", **dict(options, mode="lines"))


def test_validation_reads_the_average_of_the_weights_and_the_checkpoint_keeps_it(tmp_path,
                                                                                prose_file, tiny):
    trainer = run(prose_file, tmp_path / "m.npz", steps=30, eval_every=30, **tiny)
    average, latest = trainer.optimizer.moments["average"], trainer.params.flat.copy()
    assert not np.array_equal(average, latest)
    saved = checkpoint.load(str(tmp_path / "m.npz"), True)
    assert np.array_equal(saved.weights.flat, average)   # one validation, at the end: the best
    assert np.array_equal(saved.training.params, latest)
    assert np.array_equal(saved.training.moments["average"], average)
    latest_loss = trainer.evaluate()
    trainer.params.flat[:] = average
    assert trainer.evaluate() == trainer.run_state.best_val_loss != latest_loss


def test_without_a_validation_split_there_is_no_average_and_the_latest_weights_are_kept(
        tmp_path, prose_file, tiny):
    trainer = run(prose_file, tmp_path / "m.npz", steps=20, val_frac=0.0, **tiny)
    assert trainer.config.ema_decay == 0.0
    saved = checkpoint.load(str(tmp_path / "m.npz"), True)
    assert sorted(saved.training.moments) == ["m", "v"]
    assert np.array_equal(saved.weights.flat, trainer.params.flat)
    assert run(prose_file, tmp_path / "v.npz", steps=2, **tiny).config.ema_decay == 0.995
    with pytest.raises(UsageError, match="--ema-decay .* --val-frac 0"):
        run(prose_file, tmp_path / "r.npz", steps=2, val_frac=0.0, ema_decay=0.9, **tiny)
    assert not (tmp_path / "r.npz").exists()


@pytest.mark.parametrize("options, named", [({"patience": 2}, "--patience acts"),
                                            ({"eval_every": 3, "val_max_chars": 9},
                                             "--eval-every, --val-max-chars act")])
def test_validation_options_without_a_validation_split_are_refused(tmp_path, prose_file, tiny,
                                                                   options, named):
    with pytest.raises(UsageError, match=f"{named} on validation, and --val-frac 0"):
        run(prose_file, tmp_path / "r.npz", steps=2, val_frac=0.0, **options, **tiny)
    assert not (tmp_path / "r.npz").exists()
    run(prose_file, tmp_path / "s.npz", steps=2, val_frac=0.0, patience=0, **tiny)
    with pytest.raises(UsageError, match="on validation, and --val-frac 0"):
        run(prose_file, tmp_path / "s.npz", resume=True, steps=4, **options)


@pytest.mark.parametrize("val_frac", [0.1, 0.4])     # one segment, and several with burn-in
def test_stream_validation_loss_is_the_score_of_the_validation_text(tmp_path, prose_file, tiny,
                                                                     val_frac):
    trainer = run(prose_file, tmp_path / "m.npz", steps=20, eval_every=10, val_frac=val_frac, **tiny)
    text = prose_file.read_text(encoding="utf-8")
    val_file = tmp_path / "val.txt"
    val_file.write_text(text[int(len(text) * (1 - val_frac)):], encoding="utf-8")
    if val_frac > 0.1:
        assert trainer.dataset.val_tokens > 1024         # more than one segment (MIN_SEGMENT)
    scored = score_file(charlm.load(tmp_path / "m.npz"), val_file, exact=True)
    assert scored.num_tokens == trainer.dataset.val_tokens
    assert -scored.log_prob / scored.num_tokens == pytest.approx(trainer.run_state.best_val_loss,
                                                                 rel=1e-5)


def test_optimizers_all_learn(tmp_path, prose_file, tiny):
    for name, lr in (("adam", 1e-2), ("rmsprop", 3e-3), ("sgd", 1.0)):
        trainer = run(prose_file, tmp_path / f"{name}.npz", optimizer=name, lr=lr, steps=60,
                      eval_every=30, **tiny)
        history = trainer.run_state.history
        first, last = history[0].val_loss, history[-1].val_loss
        assert last < first, name


def test_a_diverging_run_stops_and_keeps_the_last_checkpoint(tmp_path, prose_file, tiny):
    out = tmp_path / "m.npz"
    run(prose_file, out, steps=10, **tiny)
    before = out.read_bytes()
    trainer = new_trainer(str(prose_file), str(out), resume=True, steps=20)
    trainer.params.flat[:] = np.nan                       # what a blow-up leaves behind
    with pytest.raises(TrainingDiverged, match=r"step 11.*lower --lr"):
        trainer.run()
    assert out.read_bytes() == before


def test_an_existing_checkpoint_is_never_replaced_silently(tmp_path, names_file, tiny):
    out = tmp_path / "m.npz"
    run(names_file, out, steps=2, **tiny)
    with pytest.raises(UsageError, match="--resume.*--force"):
        new_trainer(str(names_file), str(out), steps=2)
    run(names_file, out, steps=3, force=True, **tiny)
    assert checkpoint.load(str(out), True).training.run.step == 3


def test_resume_refuses_another_corpus(tmp_path, names_file, prose_file, tiny):
    out = tmp_path / "m.npz"
    run(names_file, out, steps=2, **tiny)
    with pytest.raises(UsageError, match="not the corpus"):
        new_trainer(str(prose_file), str(out), resume=True, steps=4)


@pytest.mark.parametrize("corpus, place", [("names_file", {"index": 10**6}),
                                           ("names_file", {"chunk": 7}),
                                           ("prose_file", {"chunk": 1})])
def test_a_training_state_outside_the_data_is_refused(tmp_path, request, tiny, corpus, place):
    """A run state whose place in the data its corpus's batches do not have (a damaged file) is
    refused as a damaged checkpoint, not met as an IndexError mid-run."""
    import json
    from charlm.errors import CheckpointError
    corpus = request.getfixturevalue(corpus)
    out = tmp_path / "m.npz"
    run(corpus, out, steps=2, **tiny)
    with np.load(out) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["state.json"] = np.array(json.dumps({**json.loads(str(arrays["state.json"])), **place}))
    np.savez(out, **arrays)
    with pytest.raises(CheckpointError, match="the checkpoint is damaged"):
        new_trainer(str(corpus), str(out), resume=True, steps=4)


class TickingClock:
    """A clock that advances 10 ms at every reading: under it a run takes the same steps on any
    machine, and a test of a time budget never times the machine."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 0.01
        return self.now

    monotonic = perf_counter


def test_max_time_stops_the_run_and_validates_at_the_end(tmp_path, prose_file, tiny, monkeypatch):
    """By the run's own clock; the wall time of real --max-time runs is what
    benchmarks/bench_quality.py reports."""
    clock = TickingClock()
    monkeypatch.setattr(charlm.training.trainer, "time", clock)
    trainer = run(prose_file, tmp_path / "m.npz", max_time=1.0, **tiny)
    assert clock.now > 1.0                                          # the run went by this clock
    assert trainer.stop_reason == "time" and trainer.run_state.step > 1
    assert trainer.run_state.history[-1].step == trainer.run_state.step   # validated at the end


def test_checkpoint_every_saves_between_validations(tmp_path, prose_file, tiny, monkeypatch):
    saved_at = []
    import charlm.training.trainer as train_module
    real_save = train_module.ckpt.save
    monkeypatch.setattr(train_module.ckpt, "save",
                        lambda path, c: (saved_at.append(c.training.run.step), real_save(path, c)))
    run(prose_file, tmp_path / "m.npz", steps=12, checkpoint_every=5, eval_every=100, **tiny)
    assert saved_at == [5, 10, 12]


def test_mode_detection():
    assert detect_mode(read_corpus(None).text)[0] == "lines"
    assert detect_mode("Anna\nBob\nCarla\n")[0] == "lines"
    assert detect_mode("To be, or not.\n\nThat is the question.\n")[0] == "stream"
    assert detect_mode("one single line of text")[0] == "stream"


def test_learning_rate_warms_up_then_follows_the_time_budget():
    c = Config(lr=1e-2, warmup_steps=10, lr_min_frac=0.1, max_time=60.0)
    assert learning_rate(c, 0, 0.0, 0.0) == pytest.approx(1e-3)
    assert learning_rate(c, 9, 0.0, 0.0) == pytest.approx(1e-2)
    assert learning_rate(c, 500, 3.0, 0.5) == pytest.approx(0.55e-2)
    assert learning_rate(c, 900, 6.0, 1.0) == pytest.approx(1e-3)


def test_learning_rate_without_a_time_budget_decays_per_epoch():
    c = Config(lr=1e-2, warmup_steps=0, lr_min_frac=0.5)
    assert learning_rate(c, 100, 1.0) == pytest.approx(0.97e-2)
    assert learning_rate(c, 100, 10.0) == pytest.approx(1e-2 * 0.97 ** 10)
    assert learning_rate(c, 100, 1000.0) == pytest.approx(0.5e-2)


def test_the_api_trains_twice_in_one_process(tmp_path, names_file, tiny):
    """charlm.train is the function, also after the training module has been imported."""
    import charlm.training.trainer  # noqa: F401  (a module of that name once hid the function)
    for k in range(2):
        model = charlm.train(str(names_file), out=str(tmp_path / f"{k}.npz"), steps=3, **tiny)
        assert model.config.hidden_size == tiny["hidden_size"]


def test_weight_decay_shrinks_the_matrices_and_leaves_the_biases():
    from charlm.network.stack import FlatArrays, parameter_shapes
    params = FlatArrays(parameter_shapes("lstm", 7, 5, 2))
    params.flat[:] = np.random.default_rng(0).standard_normal(params.flat.size)
    before = params.flat.copy()
    config = Config(weight_decay=0.5, optimizer="sgd")
    optimizer = charlm.training.trainer.Optimizer(config, params.flat, decayed=params.matrices())
    optimizer.step(params.flat, np.zeros_like(params.flat), lr=0.1, scale=1.0, t=1)
    after = FlatArrays(params.shapes, params.flat)
    original = FlatArrays(params.shapes, before)
    for name, shape in params.shapes:
        expected = original[name] * (np.float32(0.95) if len(shape) == 2 else 1)
        np.testing.assert_array_equal(after[name], expected, err_msg=name)


def test_the_average_follows_every_step_with_a_decay_warmed_up_from_the_first():
    rng = np.random.default_rng(4)
    p = rng.standard_normal(40).astype(np.float32)
    optimizer = charlm.training.trainer.Optimizer(Config(optimizer="sgd", ema_decay=0.7), p)
    expected = p.astype(np.float64)
    for t in range(1, 41):     # the decay is (1 + t) / (10 + t) up to t = 20, then 0.7
        optimizer.step(p, rng.standard_normal(40).astype(np.float32), 0.1, 1.0, t)
        decay = min(0.7, (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * p
    np.testing.assert_allclose(optimizer.moments["average"], expected, rtol=1e-5, atol=1e-6)


def test_adamw_is_decay_then_the_adam_step():
    from charlm.kernels import optim
    rng = np.random.default_rng(3)
    p = rng.standard_normal(50).astype(np.float32)
    g = rng.standard_normal(50).astype(np.float32)
    config = Config(weight_decay=0.1, beta2=0.99)
    optimizer = charlm.training.trainer.Optimizer(config, p, decayed=[p])
    expected, m, v = p * np.float32(1 - 0.01 * 0.1), np.zeros_like(p), np.zeros_like(p)
    optim.adam_update(expected, g, m, v, 0.01, 1.0, 0.9, 0.99, 1e-8, 1)
    optimizer.step(p, g, 0.01, 1.0, 1)
    np.testing.assert_array_equal(p, expected)
    np.testing.assert_array_equal(optimizer.moments["v"], v)


def test_a_checkpoint_from_before_a_setting_resumes_as_its_run_did():
    import json
    given = Config(weight_decay=0.3, beta2=0.9, cold_starts=0.5, ema_decay=0.9)
    old = {k: v for k, v in json.loads(given.to_json()).items()
           if k not in ("weight_decay", "beta2", "cold_starts", "ema_decay")}
    restored = Config.from_json(json.dumps(old))
    assert (restored.weight_decay, restored.beta2, restored.cold_starts, restored.ema_decay) == \
        (0.0, 0.999, 0.0, 0.0)


@pytest.mark.parametrize("option, value", [("weight_decay", -0.1), ("weight_decay", 300.0),
                                           ("beta2", 1.0), ("beta2", 0.0), ("ema_decay", 1.0),
                                           ("ema_decay", -0.1)])
def test_optimizer_settings_out_of_range_are_refused(option, value):
    with pytest.raises(UsageError, match="--" + option.replace("_", "-")):
        Config(**{option: value}).validate()


@pytest.mark.parametrize("given, expected", [
    (dict(), 50), (dict(mode="lines"), 100), (dict(bidirectional=True), 100),
    (dict(seq_len=70), 70)])
def test_the_backpropagation_length_left_open_suits_the_model(given, expected):
    from charlm.text.corpus import Corpus
    from charlm.training.trainer import resolve_config
    corpus = Corpus("It was the best of times.\n\nIt was the worst of times.\n" * 50, "prose")
    config, _ = resolve_config(Config(**given), corpus)
    assert config.seq_len == expected


@pytest.mark.parametrize("given, expected", [
    (dict(), 0.1), (dict(mode="lines"), 0.0), (dict(bidirectional=True), 0.1),
    (dict(cold_starts=0.3), 0.3), (dict(cold_starts=0.0), 0.0)])
def test_cold_starts_left_open_are_on_in_stream_mode_only(given, expected):
    from charlm.text.corpus import Corpus
    from charlm.training.trainer import resolve_config
    corpus = Corpus("It was the best of times.\n\nIt was the worst of times.\n" * 50, "prose")
    config, _ = resolve_config(Config(**given), corpus)
    assert config.cold_starts == expected


@pytest.mark.parametrize("chars, minutes, hidden, weight_drop", [
    (1_115_394, 10, 384, 0.0),      # tiny Shakespeare: 1.2 recurrent weights per character
    (1_115_394, 30, 512, 0.2),      # 2.1
    (36_122, 10, 128, 0.2),         # the bundled names' size: 4.0
])
def test_weight_drop_left_open_is_on_where_the_model_has_two_weights_a_character(
        chars, minutes, hidden, weight_drop):
    from charlm.text.corpus import Corpus
    from charlm.training.trainer import resolve_config
    text = ("It was the best of times.\n\nIt was the worst of times.\n" * chars)[:chars]
    config, _ = resolve_config(Config(max_time=60.0 * minutes), Corpus(text, "prose"))
    assert (config.hidden_size, config.weight_drop) == (hidden, weight_drop)


def test_a_run_whose_dropout_masks_were_drawn_another_way_resumes_with_a_notice(tmp_path,
                                                                              prose_file, tiny):
    from charlm.training.reporter import Reporter

    class Notices(Reporter):
        def __init__(self):
            self.messages = []

        def notice(self, message):
            self.messages.append(message)

    path = tmp_path / "m.npz"
    run(prose_file, path, steps=4, dropout=0.3, **tiny)
    saved = checkpoint.load(str(path), with_training_state=True)
    saved.training.run.dropout_masks = "per step and column"     # the label of the version before
    checkpoint.save(str(path), saved)
    notices = Notices()
    new_trainer(str(prose_file), str(path), resume=True, steps=6, reporter=notices).run()
    assert any("drew its dropout masks another way (per step and column)" in m
               for m in notices.messages), notices.messages
    resumed = checkpoint.load(str(path), with_training_state=True)
    assert resumed.training.run.dropout_masks == "splitmix64 per step and column"


def test_a_min_count_that_leaves_no_character_is_refused(tmp_path, names_file):
    with pytest.raises(UsageError, match="--min-count 1000000 leaves no character"):
        new_trainer(str(names_file), str(tmp_path / "m.npz"), min_count=1_000_000)


def test_a_word_vocabulary_of_spaces_alone_is_still_trained(tmp_path):
    """--vocab-size 1 keeps one token besides <EOS> and <UNK> (here a run of spaces): something
    to learn, so not refused as a --min-count that leaves nothing."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\n" * 50, encoding="utf-8")
    trainer = new_trainer(str(corpus), str(tmp_path / "m.npz"), tokens="words", vocab_size=1,
                          steps=1, hidden_size=8)
    assert len(trainer.dataset.vocab) == 3


def test_a_setting_of_the_wrong_type_is_refused_before_training(tmp_path, names_file):
    """A value the checkpoint could not be read back with (steps=100.0) is refused at once."""
    with pytest.raises(UsageError, match="steps is 100.0, where a whole number or null belongs"):
        new_trainer(str(names_file), str(tmp_path / "m.npz"), steps=100.0)
    assert not (tmp_path / "m.npz").exists()


def test_a_min_count_that_leaves_only_labels_is_refused(tmp_path):
    """A labelled corpus's vocabulary holds its labels too: they are no characters to learn."""
    corpus = tmp_path / "c.tsv"
    corpus.write_text("a\thello\nb\tworld\n" * 20, encoding="utf-8")
    with pytest.raises(UsageError, match="--min-count 1000000 leaves no character"):
        new_trainer(str(corpus), str(tmp_path / "m.npz"), labelled=True, min_count=1_000_000)
