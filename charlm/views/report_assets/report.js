"use strict";
// charlm report page: the sampler that runs in the page (the network's forward pass, written in
// JavaScript) and the neuron browser. Everything it reads is the JSON in #charlm-data. A token is
// a character, or a word model's token (model.tokens, "chars" or "words"; model.noun names it).
//
// The forward pass follows docs/model.md (row-vector convention, gate blocks along the G*H axis
// of W_x, W_h and b), in float64 arithmetic over the stored weights:
//   rnn   h = tanh(x W_x + h W_h + b)
//   gru   [r, u] = sigmoid(x W_x + h W_h + b) on their blocks,
//         c~ = tanh(x W_x[:,2H:] + (r * h) W_h[:,2H:] + b[2H:]),  h = u c~ + (1 - u) h
//   lstm  [u, f, o, c~] = [sigmoid x3, tanh](x W_x + h W_h + b),  c = u c~ + f c,  h = o tanh(c)
//   out   p(next) = softmax(h_top W_y + b_y)
(function () {
  const data = JSON.parse(document.getElementById("charlm-data").textContent);
  const model = data.model;
  const EOS = 0, UNK = 1;

  // ---- weights ---------------------------------------------------------------------------------

  function bytesOf(base64) {
    const binary = atob(base64);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  // IEEE 754 half precision: sign, 5 exponent bits (bias 15), 10 fraction bits.
  function halfToFloat(bits) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    if (exponent === 0) return sign * fraction * Math.pow(2, -24);      // zero and subnormals
    if (exponent === 31) return fraction ? NaN : sign * Infinity;
    return sign * (1 + fraction / 1024) * Math.pow(2, exponent - 15);
  }

  const READERS = {   // bytes per value, and how to read value i (little-endian)
    float16: [2, (view, i) => halfToFloat(view.getUint16(2 * i, true))],
    float32: [4, (view, i) => view.getFloat32(4 * i, true)],
  };

  function decode(array, precision) {
    const [size, read] = READERS[precision];
    const bytes = bytesOf(array.data);
    const view = new DataView(bytes.buffer);
    const out = new Float32Array(bytes.length / size);
    for (let i = 0; i < out.length; i++) out[i] = read(view, i);
    return out;
  }

  // ---- the network -----------------------------------------------------------------------------

  const sigmoid = (x) => 1 / (1 + Math.exp(-x));

  // z[j] += sum_i x[i] W[i, j] for j in [from, to), W row-major with `cols` columns.
  function addProduct(z, x, W, cols, from, to) {
    for (let i = 0; i < x.length; i++) {
      const xi = x[i];
      if (xi === 0) continue;
      const row = i * cols;
      for (let j = from; j < to; j++) z[j] += xi * W[row + j];
    }
  }

  // Each cell's step, given z = x W_x + b: adds the recurrent product and updates the state
  // {h, c} in place (h and c of one layer, Float64Array(H) each). Looked up by the cell's name.
  const CELL_STEPS = {
    rnn(z, layer, s, H) {
      addProduct(z, s.h, layer.Wh, H, 0, H);
      for (let j = 0; j < H; j++) s.h[j] = Math.tanh(z[j]);
    },
    gru(z, layer, s, H) {
      addProduct(z, s.h, layer.Wh, 3 * H, 0, 2 * H);
      const rh = new Float64Array(H);
      for (let j = 0; j < H; j++) rh[j] = sigmoid(z[j]) * s.h[j];
      addProduct(z, rh, layer.Wh, 3 * H, 2 * H, 3 * H);
      for (let j = 0; j < H; j++) {
        const u = sigmoid(z[H + j]);
        s.h[j] = u * Math.tanh(z[2 * H + j]) + (1 - u) * s.h[j];
      }
    },
    lstm(z, layer, s, H) {
      addProduct(z, s.h, layer.Wh, 4 * H, 0, 4 * H);
      for (let j = 0; j < H; j++) {
        const u = sigmoid(z[j]), f = sigmoid(z[H + j]), o = sigmoid(z[2 * H + j]);
        s.c[j] = u * Math.tanh(z[3 * H + j]) + f * s.c[j];
        s.h[j] = o * Math.tanh(s.c[j]);
      }
    },
  };

  class Network {
    constructor(spec) {
      const w = (name) => decode(spec.weights.arrays[name], spec.weights.precision);
      this.H = spec.hidden_size;
      this.V = spec.vocab.length;
      this.cellStep = CELL_STEPS[spec.cell];
      this.width = spec.weights.arrays["layers.0.b"].shape[0];        // G*H
      this.layers = [];
      for (let l = 0; l < spec.num_layers; l++) {
        this.layers.push({ Wx: w(`layers.${l}.W_x`), Wh: w(`layers.${l}.W_h`), b: w(`layers.${l}.b`) });
      }
      this.outW = w("out.W");
      this.outB = w("out.b");
    }

    zeroState() {
      return this.layers.map(() => ({ h: new Float64Array(this.H), c: new Float64Array(this.H) }));
    }

    // Read one token (and a labelled model's label, its token id: its row of W_x is added at
    // every step; 0 for none): advance the state in place and return the logits (Float64Array(V)).
    step(state, token, label = 0) {
      const H = this.H, width = this.width;
      let below = null;
      this.layers.forEach((layer, l) => {
        const z = Float64Array.from(layer.b);
        if (l === 0) {
          const row = token * width;                     // one-hot input: a row of W_x
          for (let j = 0; j < width; j++) z[j] += layer.Wx[row + j];
          if (label) for (let j = 0; j < width; j++) z[j] += layer.Wx[label * width + j];
        } else {
          addProduct(z, below, layer.Wx, width, 0, width);
        }
        this.cellStep(z, layer, state[l], H);
        below = state[l].h;
      });
      const logits = Float64Array.from(this.outB);
      addProduct(logits, below, this.outW, this.V, 0, this.V);
      return logits;
    }
  }

  let network = null;
  function theNetwork() {          // decoded on first use: the page shows at once
    if (network === null) network = new Network(model);
    return network;
  }

  const tokenIndex = new Map(model.vocab.map((t, i) => [t, i]).slice(2));
  // The tokens of a text, cut as the model's vocabulary cuts it (model.split: the vocabulary's
  // split_js, charlm.text.words.TOKEN for words, one code point for characters).
  const split = (text) => text.match(new RegExp(model.split, "gsu")) ?? [];
  const encode = (text) => split(text).map((t) => (tokenIndex.has(t) ? tokenIndex.get(t) : UNK));

  function softmax(logits, temperature) {
    let max = -Infinity;
    for (const z of logits) max = Math.max(max, z);
    const p = logits.map((z) => Math.exp((z - max) / temperature));
    const sum = p.reduce((a, b) => a + b, 0);
    return p.map((x) => x / sum);
  }

  // p(next token | <EOS>, text[:t]) for t = 0..n: n + 1 arrays of V probabilities at temperature
  // 1, <UNK> included: what `charlm score` computes. Used by the tests through the console.
  function distributions(text) {
    const net = theNetwork();
    const state = net.zeroState();
    const out = [Array.from(softmax(net.step(state, EOS), 1))];
    for (const id of encode(text)) out.push(Array.from(softmax(net.step(state, id), 1)));
    return out;
  }

  // ---- the sampler -----------------------------------------------------------------------------

  // A seeded xorshift32 generator (Marsaglia 2003); the seed is mixed so that 0 works too.
  function randomSource(seed) {
    let s = (Math.imul(seed >>> 0, 0x9e3779b1) ^ 0x85ebca6b) >>> 0 || 1;
    return () => {
      s ^= s << 13; s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5; s >>>= 0;
      return s / 4294967296;
    };
  }

  // The row of model.drawable (charlm.text.vocab.drawable) that holds the tokens drawable after
  // `token`, read as kernels.draw.row_after reads it: rows 2 .. 2 + C - 1 mark C classes of
  // tokens (a word model's words and runs of spaces; none for characters), row 2 + C + c the
  // tokens drawable after one of class c, row 1 those after any other token.
  function rowAfter(token) {
    const classes = (model.drawable.length - 2) / 2;
    for (let c = 0; c < classes; c++) if (model.drawable[2 + c][token]) return 2 + classes + c;
    return 1;
  }

  // The drawing distribution: softmax(logits / T) over the tokens `charlm sample` may draw
  // (model.drawable's row `row`: 0 for the first token of a text without a prime, else
  // rowAfter the token before); temperature 0 is the most probable of them.
  function drawProbabilities(logits, temperature, row) {
    const allowed = model.drawable[row];
    const z = Float64Array.from(logits, (x, i) => (allowed[i] ? x : -Infinity));
    if (temperature === 0) {
      const best = z.indexOf(Math.max(...z));
      return z.map((_, i) => (i === best ? 1 : 0));
    }
    return softmax(z, temperature);
  }

  function draw(p, uniform) {
    let cumulative = 0;
    for (let i = 0; i < p.length; i++) {
      cumulative += p[i];
      if (uniform < cumulative && p[i] > 0) return i;
    }
    return p.findLastIndex((x) => x > 0);
  }

  const $ = (id) => document.getElementById(id);
  const lines = model.mode === "lines";
  let generation = 0;               // a new Draw stops the one running
  let drawing = Promise.resolve();  // settles when the latest Draw has finished

  // Yield to the browser (input, painting) and continue: a message to ourselves, which unlike a
  // timer is not slowed down in a background tab.
  function soon(callback) {
    const channel = new MessageChannel();
    channel.port1.onmessage = callback;
    channel.port2.postMessage(null);
  }

  function showMessage(text) { $("sampler-message").textContent = text; }

  function showNext(p, temperature) {
    const ranked = Array.from(p, (x, i) => [x, i]).sort((a, b) => b[0] - a[0]).slice(0, 10);
    const bars = $("next-chars");
    bars.replaceChildren();
    const title = document.createElement("p");
    title.className = "bars-title";
    title.textContent = `next ${model.noun}, at temperature ${temperature}:`;
    bars.append(title);
    for (const [prob, i] of ranked) {
      if (prob <= 0) break;
      const row = document.createElement("div");
      row.className = "bar";
      const label = document.createElement("span");
      label.className = "bar-label";
      label.textContent = visible(model.vocab[i]);
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = `${(100 * prob).toFixed(1)}%`;
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = prob.toFixed(3);
      row.append(label, fill, value);
      bars.append(row);
    }
  }

  const VISIBLE = { " ": "␣", "\n": "⏎", "\t": "⇥" };
  function visible(token) {
    return token === "<EOS>" ? "∎ end" : Array.from(token, (ch) => VISIBLE[ch] ?? ch).join("");
  }

  function runSampler() {
    drawing = new Promise((done) => generate(done));
    return drawing;
  }

  function generate(done) {
    const prime = $("prime").value;
    const temperature = Number($("temperature").value);
    const length = Math.max(1, Math.min(5000, Math.floor(Number($("length").value)) || 1));
    const seed = Number($("seed").value) >>> 0;
    const unknown = [...new Set(split(prime).filter((t) => !tokenIndex.has(t)))];
    const output = $("sampler-output");
    output.replaceChildren();
    $("next-chars").replaceChildren();
    const named = unknown.map((t) => JSON.stringify(t)).join(", ");
    // as `charlm sample --prime`: a word model reads a token it does not know as <UNK>
    if (unknown.length && model.tokens === "chars") {
      showMessage(`The prime has characters the model does not know: ${named}`);
      done();
      return;
    }
    showMessage(unknown.length ? `Read as <UNK>, tokens the model does not know: ${named}` : "");
    const net = theNetwork();
    const state = net.zeroState();
    const uniform = randomSource(seed);
    // a labelled model reads the chosen label at every step; <any>: none (docs/labels.md)
    const chosen = $("label").value;
    const label = chosen && chosen !== "<any>" ? model.vocab.indexOf(`<label:${chosen}>`) : 0;
    let logits = net.step(state, EOS, label);
    let row = 0;                                    // no prime: the first token of a text
    for (const id of encode(prime)) {
      logits = net.step(state, id, label);
      row = rowAfter(id);
    }
    // <UNK> has no class by its id: a prime's unknown last token takes the class of its text,
    // as `charlm sample` gives it (charlm.text.words.WordVocab.following)
    const last = split(prime).at(-1);
    const c = last === undefined || tokenIndex.has(last) ? -1
      : model.classes.findIndex((pattern) => new RegExp(pattern, "u").test(last));
    if (c >= 0) row = 2 + (model.drawable.length - 2) / 2 + c;
    const primeSpan = document.createElement("span");
    primeSpan.className = "prime";
    primeSpan.textContent = prime;
    const text = document.createTextNode("");
    output.append(primeSpan, text);
    const mine = ++generation;
    let made = 0;
    function chunk() {                              // a few steps at a time keeps the page live
      if (mine !== generation) { done(); return; }
      const until = performance.now() + 12;
      let piece = "";
      while (made < length && performance.now() < until) {
        const token = draw(drawProbabilities(logits, temperature, row), uniform());
        made++;
        if (token === EOS && lines) { made = length; break; }
        piece += token === EOS ? "\n" : model.vocab[token];
        logits = net.step(state, token, label);
        row = rowAfter(token);
      }
      text.data += piece;
      if (made < length) {
        soon(chunk);
      } else {
        const shown = temperature === 0 ? 1 : temperature;   // at 0 every bar but one is empty
        showNext(drawProbabilities(logits, shown, row), shown);
        done();
      }
    }
    chunk();
  }

  function setUpSampler() {
    if ((model.labels || []).length) {               // a labelled model: a menu of its labels
      const menu = $("label");
      for (const name of ["<any>", ...model.labels]) {
        const option = document.createElement("option");
        option.value = option.textContent = name;
        menu.append(option);
      }
      menu.value = model.labels[0];
      $("label-choice").hidden = false;
      menu.addEventListener("change", runSampler);
    }
    const temperature = $("temperature");
    temperature.addEventListener("input", () => { $("temperature-value").textContent = temperature.value; });
    $("draw").addEventListener("click", runSampler);
    $("reseed").addEventListener("click", () => {
      $("seed").value = String(Math.floor(Math.random() * 4294967296));
      runSampler();
    });
    if (lines) $("length").value = "40";
  }

  // ---- the neuron browser ----------------------------------------------------------------------

  const neuronData = data.neurons;
  const quantised = (series) => new Int8Array(bytesOf(series.data).buffer);

  // The diverging colour of views.neurons.colour_of: blue at -scale, white at 0, red at +scale.
  function colourOf(value, scale) {
    const [negative, neutral, positive] = neuronData.colours;
    const x = scale > 0 ? Math.max(-1, Math.min(1, value / scale)) : 0;
    const end = x > 0 ? positive : negative;
    return `rgb(${neutral.map((a, k) => Math.round(a + Math.abs(x) * (end[k] - a))).join(",")})`;
  }

  function unitButton(label, select) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "unit";
    button.textContent = label;
    button.addEventListener("click", select);
    return button;
  }

  function setUpNeurons() {
    const H = neuronData.hidden;
    const top = quantised(neuronData);
    const n = top.length / H;
    const value = (i, u) => (top[i * H + u] * neuronData.scale) / 127;
    const mean = new Float64Array(H), spread = new Float64Array(H);
    for (let i = 0; i < n; i++) for (let u = 0; u < H; u++) mean[u] += value(i, u) / n;
    for (let i = 0; i < n; i++) for (let u = 0; u < H; u++) spread[u] += (value(i, u) - mean[u]) ** 2 / n;
    spread.forEach((v, u) => { spread[u] = Math.sqrt(v); });

    const container = $("neuron-text");
    const spans = [];
    data.text.tokens.forEach((tokens) => {         // each example's tokens, one span each
      const block = document.createElement("div");
      block.className = lines ? "neuron-line" : "neuron-stream";
      for (const token of tokens) {
        const span = document.createElement("span");
        span.textContent = token === "\n" ? "⏎\n" : token;
        span.dataset.i = String(spans.length);
        spans.push(span);
        block.append(span);
      }
      container.append(block);
    });

    function show(title, values) {              // colour the text by one series
      const scale = Math.max(...values.map(Math.abs)) || 1;
      values.forEach((v, i) => {
        spans[i].style.background = colourOf(v, scale);
        spans[i].style.color = Math.abs(v) > 0.6 * scale ? "#fff" : "";
      });
      $("unit-title").textContent = title;
      $("unit-scale").replaceChildren(...[-scale, 0, scale].map((v) => {
        const swatch = document.createElement("span");
        swatch.style.background = colourOf(v, scale);
        swatch.textContent = v === 0 ? "0" : v.toFixed(2);
        return swatch;
      }));
    }

    function showUnit(u) {
      $("unit").value = String(u);
      show(`layer ${neuronData.layer} ${neuronData.state}, unit ${u}`, Array.from({ length: n }, (_, i) => value(i, u)));
    }

    const extra = new Map(neuronData.extra.map((s) => [`${s.layer}/${s.state}/${s.unit}`, s]));
    function showRanked(r) {
      const key = `${r.layer}/${r.state}/${r.unit}`;
      const title = `layer ${r.layer} ${r.state}, unit ${r.unit}: ${r.feature} (r = ${r.correlation.toFixed(2)})`;
      if (!extra.has(key)) { showUnit(r.unit); $("unit-title").textContent = title; return; }
      const series = extra.get(key), q = quantised(series);
      $("unit").value = "";
      show(title, Array.from(q, (v) => (v * series.scale) / 127));
    }

    const ranking = $("ranking");
    for (const r of neuronData.ranking) {
      const sign = r.correlation >= 0 ? "+" : "−";
      ranking.append(unitButton(`L${r.layer} ${r.state} ${r.unit} · ${r.feature} ${sign}${Math.abs(r.correlation).toFixed(2)}`, () => showRanked(r)));
    }

    container.addEventListener("mouseover", (event) => {
      const i = Number(event.target.dataset.i);
      if (Number.isNaN(i)) return;
      const standing = Array.from({ length: H }, (_, u) => [u, spread[u] > 0 ? (value(i, u) - mean[u]) / spread[u] : 0]);
      standing.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
      const panel = $("neuron-hover");
      const heading = document.createElement("p");
      heading.className = "hover-title";
      heading.textContent = `after ${JSON.stringify(spans[i].textContent.replace("⏎\n", "\n"))}: the units furthest from their mean`;
      panel.replaceChildren(heading, ...standing.slice(0, 8).map(([u, z]) =>
        unitButton(`unit ${u}: ${value(i, u).toFixed(2)} (${z >= 0 ? "+" : "−"}${Math.abs(z).toFixed(1)} sd)`, () => showUnit(u))));
    });
    $("unit").max = String(H - 1);
    $("unit").addEventListener("change", () => {
      const u = Math.floor(Number($("unit").value));
      if (u >= 0 && u < H) showUnit(u);
    });
    if (neuronData.ranking.length) showRanked(neuronData.ranking[0]); else showUnit(0);
  }

  setUpSampler();
  setUpNeurons();
  window.charlmReport = { distributions, encode, split, vocab: model.vocab, drawing: () => drawing };
  soon(runSampler);                   // a first sample, once the page is shown
})();
