// The classifier's live dashboard: one page, no framework, no outside files. Everything it
// shows comes from the server's JSON API under /api/v1/ (protobuf's JSON mapping of the
// classifier.v1 messages); a job's curves come from its server-sent event stream.
'use strict';

const kRefreshMs = 2000;           // the overview's polling period
const kReconnectMs = 1000;         // an event stream that dropped is reopened after this
const kSampleCount = 24;           // images in a model's sample grid
const kChartWidth = 520;
const kChartHeight = 220;
const kTokenKey = 'classifier.token';

const view = document.getElementById('view');
const message = document.getElementById('message');
const tokenInput = document.getElementById('token');

// What the current page started (timers, streams), stopped when the page changes.
let cleanups = [];

function onLeave(fn) { cleanups.push(fn); }

function leavePage() {
  for (const fn of cleanups) fn();
  cleanups = [];
}

// ---- API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, text) {
    super(text);
    this.status = status;
    this.code = code;
  }
}

function authHeaders() {
  const token = sessionStorage.getItem(kTokenKey);
  return token ? { Authorization: 'Bearer ' + token } : {};
}

async function api(path, options = {}) {
  const init = { method: options.method || 'GET', headers: authHeaders(), signal: options.signal };
  if (init.method === 'POST') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(options.body || {});
  }
  const response = await fetch('/api/v1/' + path, init);
  const text = await response.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch (e) { json = {}; }
  if (!response.ok) {
    const error = json.error || {};
    throw new ApiError(response.status, error.status || String(response.status),
                       error.message || response.statusText);
  }
  return json;
}

function showMessage(text, kind = 'error') {
  message.textContent = text;
  message.className = kind;
  message.hidden = !text;
}

function explain(error) {
  if (error instanceof ApiError && error.status === 401) {
    return error.message + ' (enter the API token at the top right)';
  }
  return error.message || String(error);
}

// ---- Formatting ---------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes = {}) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value);
  }
  return node;
}

const percent = (fraction) => (fraction === undefined || fraction === null)
  ? '' : (100 * fraction).toFixed(2) + '%';
const fixed = (value, digits = 4) => (value === undefined || value === null)
  ? '' : Number(value).toFixed(digits);
const shortState = (state) => (state || '').replace('JOB_STATE_', '');

function duration(seconds) {
  if (seconds === undefined || seconds === null || !isFinite(seconds)) return '';
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

function when(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : '';
}

const isActive = (state) => state === 'JOB_STATE_QUEUED' || state === 'JOB_STATE_RUNNING';

// ---- Actions (token-protected on a server with --auth_token_file) -------------------------

async function cancelJob(jobId, button) {
  button.disabled = true;
  try {
    await api(`jobs/${encodeURIComponent(jobId)}:cancel`, { method: 'POST' });
    showMessage(`cancelling ${jobId}: it stops at the next batch`, 'info');
  } catch (error) {
    showMessage(`cancel ${jobId}: ${explain(error)}`);
    button.disabled = false;
  }
}

async function deployModel(modelId, button, after) {
  button.disabled = true;
  try {
    await api(`models/${encodeURIComponent(modelId)}:deploy`, { method: 'POST' });
    showMessage(`${modelId} is deployed: Predict uses it from now on`, 'info');
    if (after) after();
  } catch (error) {
    showMessage(`deploy ${modelId}: ${explain(error)}`);
    button.disabled = false;
  }
}

// ---- Overview: jobs and models ------------------------------------------------------------

function jobRow(job) {
  const latest = job.latestEpoch || {};
  const epochs = latest.epochs || (job.request && job.request.epochs) || 0;
  const epoch = latest.epoch || 0;
  const state = shortState(job.state);
  const accuracy = job.testMetrics && job.state === 'JOB_STATE_SUCCEEDED'
    ? percent(job.testMetrics.accuracy) + ' test'
    : latest.validationAccuracy !== undefined ? percent(latest.validationAccuracy) + ' val'
    : latest.epoch ? percent(latest.trainAccuracy) + ' train' : '';
  const actions = isActive(job.state)
    ? el('button', { class: 'danger', 'data-action': 'cancel',
                     onclick: (e) => cancelJob(job.jobId, e.target) }, 'Cancel')
    : null;
  return el('tr', { 'data-job-id': job.jobId, 'data-state': state, 'data-epoch': epoch },
    el('td', {}, el('a', { href: `#/jobs/${encodeURIComponent(job.jobId)}` }, job.jobId)),
    el('td', {}, el('span', { class: `state state-${state}` }, state)),
    el('td', {}, (job.request && job.request.dataset) || 'mnist'),
    el('td', { class: 'epoch' },
       el('progress', { max: epochs || 1, value: epoch }), ` ${epoch}/${epochs || '?'}`),
    el('td', { class: 'num' }, fixed(latest.trainLoss)),
    el('td', { class: 'num' }, accuracy),
    el('td', { class: 'num eta' }, job.state === 'JOB_STATE_RUNNING' ? duration(latest.etaSeconds) : ''),
    el('td', {}, job.modelId
      ? el('a', { href: `#/models/${encodeURIComponent(job.modelId)}` }, job.modelId) : ''),
    el('td', {}, actions));
}

function modelRow(model, refresh) {
  const metrics = model.testMetrics || {};
  return el('tr', { 'data-model-id': model.modelId, 'data-deployed': model.deployed ? 'true' : 'false' },
    el('td', {}, el('a', { href: `#/models/${encodeURIComponent(model.modelId)}` }, model.modelId)),
    el('td', {}, model.deployed ? el('span', { class: 'deployed', title: 'the deployed model' }, '\u2605 deployed') : ''),
    el('td', {}, model.dataset),
    el('td', { class: 'num' }, metrics.count ? percent(metrics.accuracy) : el('span', { class: 'muted' }, 'pending')),
    el('td', {}, model.jobId || el('span', { class: 'muted' }, 'imported')),
    el('td', {}, when(model.createdTime)),
    el('td', {}, model.deployed ? '' : el('button', {
      class: 'primary', 'data-action': 'deploy',
      onclick: (e) => deployModel(model.modelId, e.target, refresh) }, 'Deploy')));
}

function table(headers, bodyId) {
  return el('table', {},
    el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', {}, h)))),
    el('tbody', { id: bodyId }));
}

function renderOverview() {
  view.replaceChildren(
    el('h1', {}, 'Jobs'),
    table(['Job', 'State', 'Dataset', 'Epoch', 'Train loss', 'Accuracy', 'ETA', 'Model', ''], 'jobs'),
    el('h2', {}, 'Models'),
    table(['Model', '', 'Dataset', 'Test accuracy', 'Job', 'Created', ''], 'models'));
  let stopped = false;
  const refresh = async () => {
    try {
      const [jobs, models] = await Promise.all([api('jobs?page_size=50'), api('models?page_size=50')]);
      if (stopped) return;
      const jobRows = (jobs.jobs || []).map(jobRow);
      document.getElementById('jobs').replaceChildren(...(jobRows.length ? jobRows
        : [el('tr', {}, el('td', { colspan: 9, class: 'muted' }, 'No jobs yet: classifier-cli train'))]));
      const modelRows = (models.models || []).map((m) => modelRow(m, refresh));
      document.getElementById('models').replaceChildren(...(modelRows.length ? modelRows
        : [el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No models yet'))]));
      view.dataset.loaded = 'true';
    } catch (error) {
      if (!stopped) showMessage(explain(error));
    }
  };
  refresh();
  const timer = setInterval(refresh, kRefreshMs);
  onLeave(() => { stopped = true; clearInterval(timer); });
}

// ---- Charts -------------------------------------------------------------------------------

// A line chart of several series of (epoch, value) points, redrawn whole on each update: a
// few hundred points at most.
class Chart {
  constructor(id, title, format) {
    this.format = format;
    this.series = new Map();  // name -> Map(epoch -> value)
    this.svg = svg('svg', { id, width: kChartWidth, height: kChartHeight, role: 'img',
                            'aria-label': title });
    this.node = el('div', { class: 'chart' }, el('h3', {}, title), this.svg);
  }

  set(seriesName, epoch, value) {
    if (value === undefined || value === null || !isFinite(value)) return;
    if (!this.series.has(seriesName)) this.series.set(seriesName, new Map());
    this.series.get(seriesName).set(epoch, value);
    this.draw();
  }

  draw() {
    const left = 48, right = 12, top = 10, bottom = 40;
    const width = kChartWidth - left - right, height = kChartHeight - top - bottom;
    let maxEpoch = 1, low = Infinity, high = -Infinity;
    for (const points of this.series.values()) {
      for (const [epoch, value] of points) {
        maxEpoch = Math.max(maxEpoch, epoch);
        low = Math.min(low, value);
        high = Math.max(high, value);
      }
    }
    if (!isFinite(low)) { low = 0; high = 1; }
    if (high - low < 1e-9) { high += 0.5; low -= 0.5; }
    const pad = (high - low) * 0.08;
    low -= pad; high += pad;
    const x = (epoch) => left + (maxEpoch <= 1 ? width / 2 : (epoch - 1) / (maxEpoch - 1) * width);
    const y = (value) => top + (1 - (value - low) / (high - low)) * height;
    const nodes = [
      svg('line', { class: 'axis', x1: left, y1: top + height, x2: left + width, y2: top + height }),
      svg('line', { class: 'axis', x1: left, y1: top, x2: left, y2: top + height }),
      svg('text', { class: 'tick', x: 4, y: top + 8, text: this.format(high) }),
      svg('text', { class: 'tick', x: 4, y: top + height, text: this.format(low) }),
      svg('text', { class: 'tick', x: left, y: top + height + 14, text: 'epoch 1' }),
      svg('text', { class: 'tick', x: left + width - 40, y: top + height + 14, text: `epoch ${maxEpoch}` }),
    ];
    let index = 0;
    for (const [name, points] of this.series) {
      const cls = `series-${index % 4}`;
      const sorted = [...points].sort((a, b) => a[0] - b[0]);
      nodes.push(svg('polyline', { class: cls, 'data-series': name,
                                   points: sorted.map(([e, v]) => `${x(e)},${y(v)}`).join(' ') }));
      for (const [epoch, value] of sorted) {
        const point = svg('circle', { class: `point ${cls}`, cx: x(epoch), cy: y(value), r: 3,
                                      'data-series': name, 'data-epoch': epoch,
                                      'data-value': value });
        point.append(svg('title', { text: `${name}, epoch ${epoch}: ${this.format(value)}` }));
        nodes.push(point);
      }
      nodes.push(svg('text', { class: `legend ${cls}`, x: left + 10 + index * 130,
                               y: kChartHeight - 6, text: name, stroke: 'none' }));
      ++index;
    }
    this.svg.replaceChildren(...nodes);
  }
}

// ---- One job: facts, live curves, events --------------------------------------------------

// Reads a text/event-stream body with fetch (so the token goes in a header, which an
// EventSource cannot send), calling onEvent(name, data, id) per event. Resolves at the end.
async function readEventStream(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let boundary;
    while ((boundary = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      let name = 'message', data = '', id = null;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;  // keepalive
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') name = text;
        else if (field === 'data') data += (data ? '\n' : '') + text;
        else if (field === 'id') id = text;
      }
      if (data) onEvent(name, JSON.parse(data), id);
    }
  }
}

function renderJob(jobId) {
  const facts = el('div', { class: 'facts', id: 'job-facts' });
  const loss = new Chart('loss-chart', 'Loss', (v) => Number(v).toFixed(3));
  const accuracy = new Chart('accuracy-chart', 'Accuracy', (v) => (100 * v).toFixed(1) + '%');
  const log = el('div', { class: 'events', id: 'job-events' });
  const cancel = el('button', { class: 'danger', id: 'cancel-job', hidden: true,
                                onclick: (e) => cancelJob(jobId, e.target) }, 'Cancel job');
  view.replaceChildren(
    el('h1', {}, 'Job ', el('span', { id: 'job-id' }, jobId), ' ', cancel),
    facts,
    el('div', { class: 'charts' }, loss.node, accuracy.node),
    el('h2', {}, 'Events'), log);

  const state = { job: null, lastSequence: 0, epochs: 0, ended: false, trials: false };
  const showFacts = () => {
    const job = state.job || {};
    const latest = job.latestEpoch || {};
    const shown = shortState(job.state);
    facts.replaceChildren(...[
      el('div', {}, el('span', {}, 'state'), el('b', { id: 'job-state', class: `state state-${shown}` }, shown)),
      el('div', {}, el('span', {}, 'dataset'), (job.request && job.request.dataset) || 'mnist'),
      el('div', {}, el('span', {}, 'epoch'),
         el('b', { id: 'job-epoch', 'data-epoch': state.epochs }, `${state.epochs}/${latest.epochs || (job.request && job.request.epochs) || '?'}`)),
      el('div', {}, el('span', {}, 'ETA'), isActive(job.state) ? duration(latest.etaSeconds) : ''),
      el('div', {}, el('span', {}, 'model'), job.modelId
        ? el('a', { href: `#/models/${encodeURIComponent(job.modelId)}` }, job.modelId) : ''),
      job.testMetrics ? el('div', {}, el('span', {}, 'test accuracy'), percent(job.testMetrics.accuracy)) : null,
      job.error ? el('div', {}, el('span', {}, 'error'), job.error) : null].filter(Boolean));
    cancel.hidden = !isActive(job.state);
    cancel.disabled = false;
  };

  const logLine = (text) => {
    log.append(el('div', {}, text));
    log.scrollTop = log.scrollHeight;
  };

  const onJobEvent = (event) => {
    state.lastSequence = Math.max(state.lastSequence, Number(event.sequence));
    const series = (name) => (event.trial ? `trial ${event.trial} ${name}` : name);
    const time = new Date(event.time).toLocaleTimeString();
    if (event.epochEnd) {
      const e = event.epochEnd;
      loss.set(series('train'), e.epoch, e.trainLoss);
      accuracy.set(series('train'), e.epoch, e.trainAccuracy);
      if (e.validationLoss !== undefined) loss.set(series('validation'), e.epoch, e.validationLoss);
      if (e.validationAccuracy !== undefined) accuracy.set(series('validation'), e.epoch, e.validationAccuracy);
      state.epochs = Math.max(state.epochs, e.epoch);
      if (state.job) state.job.latestEpoch = e;
      if (state.job && state.job.state === 'JOB_STATE_QUEUED') state.job.state = 'JOB_STATE_RUNNING';
      logLine(`${time} #${event.sequence} epoch ${e.epoch}/${e.epochs}: loss ${fixed(e.trainLoss)}, ` +
              `accuracy ${percent(e.trainAccuracy)}` +
              (e.validationAccuracy !== undefined ? `, validation ${percent(e.validationAccuracy)}` : '') +
              `, ${Math.round(e.imagesPerSecond)} images/s`);
    } else if (event.finished) {
      const f = event.finished;
      if (state.job) {
        state.job.state = f.state;
        state.job.modelId = f.modelId;
        state.job.testMetrics = f.testMetrics;
        state.job.error = f.error;
      }
      logLine(`${time} #${event.sequence} ${shortState(f.state)}` +
              (f.modelId ? `: model ${f.modelId}` : '') + (f.error ? `: ${f.error}` : ''));
    } else if (event.started) {
      if (state.job) state.job.state = 'JOB_STATE_RUNNING';
      logLine(`${time} #${event.sequence} started on ${event.started.device}`);
    } else {
      const kind = Object.keys(event).find((k) => !['jobId', 'sequence', 'time', 'trial'].includes(k));
      if (kind !== 'progress') logLine(`${time} #${event.sequence} ${kind || 'event'}`);
    }
    showFacts();
    view.dataset.lastSequence = state.lastSequence;
  };

  const controller = new AbortController();
  onLeave(() => { state.ended = true; controller.abort(); });

  const follow = async () => {
    while (!state.ended) {
      try {
        const response = await fetch(
          `/api/v1/jobs/${encodeURIComponent(jobId)}/events?from_sequence=${state.lastSequence + 1}`,
          { headers: authHeaders(), signal: controller.signal });
        if (!response.ok) {
          const body = await response.json().catch(() => ({}));
          throw new ApiError(response.status, '', (body.error && body.error.message) || response.statusText);
        }
        showMessage('');
        await readEventStream(response, (name, data) => {
          if (name === 'job_event') onJobEvent(data);
          else if (name === 'end') { state.ended = true; view.dataset.streamEnded = 'true'; }
          else if (name === 'error') throw new ApiError(0, data.error.status, data.error.message);
        });
      } catch (error) {
        if (state.ended || controller.signal.aborted) return;
        showMessage(`events of ${jobId}: ${explain(error)}; retrying`);
        if (error instanceof ApiError && (error.status === 404 || error.status === 401)) {
          await new Promise((resolve) => setTimeout(resolve, 5 * kReconnectMs));
          continue;
        }
      }
      if (!state.ended) await new Promise((resolve) => setTimeout(resolve, kReconnectMs));
    }
  };

  api(`jobs/${encodeURIComponent(jobId)}`).then((job) => {
    state.job = job;
    showFacts();
    follow();
  }).catch((error) => showMessage(`job ${jobId}: ${explain(error)}`));
}

// ---- One model: evaluation, confusion matrix, samples -------------------------------------

function base64ToBytes(text) {
  const binary = atob(text || '');
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; ++i) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function bytesToBase64(bytes) {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function drawDigit(pixels, height, width) {
  const canvas = el('canvas', { width, height });
  const context = canvas.getContext('2d');
  const image = context.createImageData(width, height);
  for (let i = 0; i < pixels.length; ++i) {
    const ink = 255 - pixels[i];  // 0 = background: white paper, dark ink
    image.data.set([ink, ink, ink, 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

function confusionTable(matrix) {
  const classes = matrix.length;
  const header = el('tr', {}, el('th', {}, 'true \u2193 / predicted \u2192'),
                    ...Array.from({ length: classes }, (_, c) => el('th', {}, String(c))));
  const rows = matrix.map((row, r) => el('tr', { 'data-row': r }, el('th', {}, String(r)),
    ...(row.counts || []).map((count, c) => el('td', {
      class: r === c ? 'diagonal' : Number(count) > 0 ? 'off' : '' }, String(count)))));
  return el('table', { class: 'confusion', id: 'confusion-matrix' }, el('thead', {}, header),
            el('tbody', {}, ...rows));
}

function renderModel(modelId) {
  const deploy = el('button', { class: 'primary', id: 'deploy-model',
                                onclick: (e) => deployModel(modelId, e.target) }, 'Deploy');
  const summary = el('div', { class: 'facts', id: 'model-facts' }, 'evaluating on the test split...');
  const confusion = el('div', { id: 'confusion' });
  const perClass = el('div', {});
  const samples = el('div', { class: 'samples', id: 'samples' });
  view.replaceChildren(
    el('h1', {}, 'Model ', el('span', { id: 'model-id' }, modelId), ' ', deploy),
    summary, el('h2', {}, 'Confusion matrix (test split)'), confusion,
    el('h2', {}, 'Per class'), perClass, el('h2', {}, 'Sample predictions'), samples);

  const id = encodeURIComponent(modelId);
  api(`models/${id}/evaluation`).then(async (evaluation) => {
    summary.replaceChildren(
      el('div', {}, el('span', {}, 'dataset'), evaluation.dataset),
      el('div', {}, el('span', {}, 'accuracy'), el('b', { id: 'model-accuracy' }, percent(evaluation.accuracy))),
      el('div', {}, el('span', {}, 'loss'), fixed(evaluation.loss)),
      el('div', {}, el('span', {}, 'images'), evaluation.count));
    confusion.replaceChildren(confusionTable(evaluation.confusionMatrix || []));
    perClass.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, ...['Class', 'Precision', 'Recall', 'F1', 'Support'].map((h) => el('th', { class: 'num' }, h)))),
      el('tbody', {}, ...(evaluation.perClass || []).map((c) => el('tr', {},
        el('td', { class: 'num' }, c.label || 0), el('td', { class: 'num' }, percent(c.precision)),
        el('td', { class: 'num' }, percent(c.recall)), el('td', { class: 'num' }, percent(c.f1)),
        el('td', { class: 'num' }, c.support))))));

    const grid = await api(`datasets/${encodeURIComponent(evaluation.dataset)}/samples?split=DATASET_SPLIT_TEST&count=${kSampleCount}&seed=1`);
    const pixels = base64ToBytes(grid.pixels);
    const size = grid.imageHeight * grid.imageWidth;
    const images = grid.labels.map((_, i) => pixels.subarray(i * size, (i + 1) * size));
    const predicted = await api('predict', { method: 'POST', body: {
      modelId, images: images.map((image) => ({ rawPixels: bytesToBase64(image) })) } });
    samples.replaceChildren(...images.map((image, i) => {
      const label = grid.labels[i];
      const result = (predicted.predictions || [])[i] || {};
      const guess = result.label || 0;
      return el('div', { class: `sample ${guess === label ? 'right' : 'wrong'}`,
                         'data-label': label, 'data-predicted': guess },
        drawDigit(image, grid.imageHeight, grid.imageWidth),
        el('div', {}, `true ${label}`), el('div', {}, `predicted ${guess}`));
    }));
    view.dataset.loaded = 'true';
  }).catch((error) => showMessage(`model ${modelId}: ${explain(error)}`));
}

// ---- Routing ------------------------------------------------------------------------------

function route() {
  leavePage();
  showMessage('');
  delete view.dataset.loaded;
  delete view.dataset.lastSequence;
  delete view.dataset.streamEnded;
  const hash = location.hash.replace(/^#\/?/, '');
  const [kind, ...rest] = hash.split('/');
  const id = decodeURIComponent(rest.join('/'));
  if (kind === 'jobs' && id) renderJob(id);
  else if (kind === 'models' && id) renderModel(id);
  else renderOverview();
}

document.getElementById('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  if (token) sessionStorage.setItem(kTokenKey, token);
  else sessionStorage.removeItem(kTokenKey);
  tokenInput.value = '';
  tokenInput.placeholder = token ? 'token set' : 'for cancel and deploy';
  showMessage(token ? 'token set for this tab' : 'token cleared', 'info');
});
if (sessionStorage.getItem(kTokenKey)) tokenInput.placeholder = 'token set';
window.addEventListener('hashchange', route);
route();
