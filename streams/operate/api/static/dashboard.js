// The ML-monitoring dashboard: reads the monitoring API, draws each panel on its own (a failing
// endpoint shows its error in its panel only), refreshes every 30 s, and changes the rollout
// flags with the API token kept in sessionStorage (never in the URL or the page). The same
// token goes with every read, for an API that guards its reads with API_READ_TOKEN.

import {DAY_MS, intervalStrip, lineChart, splitBar} from './charts.js';
import {drawEstimated, drawLabels, drawRamp, drawShadow, drawTimeline} from './closed_loop.js';
import {el, fmtInt, fmtNumber, fmtShare, fmtTime, numberCell, replaceChildren} from './dom.js';

const REFRESH_MS = 30_000;
const TIMEOUT_MS = 15_000;
const TOKEN_KEY = 'delaycast.apiToken';
const ACTOR_KEY = 'delaycast.actor';
const ROOT = document.body.dataset.root || '';
const ARMS = ['ml', 'heuristic'];
const ARM_LABEL = {ml: 'ML', heuristic: 'Heuristic'};
const VERDICT_LABEL = {
  ml_better: 'ML better',
  heuristic_better: 'Heuristic better',
  inconclusive: 'Inconclusive',
};
const NO_OUTCOMES = 'no outcomes yet';
// Below this many outcomes with a P90, a coverage near 90 % has a standard error above 5 points
// (sqrt(0.9 × 0.1 / 36) = 0.05), half the width of the alert band: shown, but marked too few.
const MIN_P90_N = 36;
const P90_LEVEL = 0.9;

// Read by the load check and the browser test: every API call of the page and its duration.
const probe = {calls: [], refreshes: 0, firstLoadMs: null};
window.__dashboard = probe;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function detailOf(status, body) {
  const detail = body && body.detail;
  if (typeof detail === 'string' && detail) return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join('; ');
  return `the API answered HTTP ${status}`;
}

/** GET a JSON document; statuses in ``accept`` count as answers (health is 503 when down). */
async function getJson(path, {accept = [200]} = {}) {
  const started = performance.now();
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  let status = 0;
  try {
    const headers = {Accept: 'application/json'};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(ROOT + path, {signal: abort.signal, headers, cache: 'no-store'});
    status = response.status;
    const body = await response.json().catch(() => null);
    if (!accept.includes(status) || body === null) {
      throw new ApiError(status, `HTTP ${status}: ${detailOf(status, body)}`);
    }
    return body;
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (error.name === 'AbortError') {
      throw new ApiError(0, `no answer within ${TIMEOUT_MS / 1000} s`);
    }
    throw new ApiError(0, `cannot reach the API: ${error.message}`);
  } finally {
    clearTimeout(timer);
    probe.calls.push({path, status, ms: performance.now() - started, refresh: probe.refreshes});
  }
}

function settle(promise) {
  return promise.then((value) => ({ok: true, value}), (error) => ({ok: false, error}));
}

// ---------------------------------------------------------------------------------------------
// Panels

function panelOf(name) {
  const section = document.querySelector(`[data-panel="${name}"]`);
  return {
    section,
    body: section.querySelector('.panel-body'),
    error: section.querySelector('.panel-error'),
  };
}

function showError(name, error) {
  const panel = panelOf(name);
  panel.error.textContent = error.message;
  panel.error.hidden = false;
  panel.body.replaceChildren();
  panel.section.dataset.status = 'error';
}

function show(name, nodes) {
  const panel = panelOf(name);
  panel.error.hidden = true;
  panel.error.textContent = '';
  replaceChildren(panel.body, nodes);
  panel.section.dataset.status = 'ok';
}

/** Render a settled call into its panel; a rendering error is shown there, not thrown. */
function render(name, result, draw) {
  if (!result.ok) {
    showError(name, result.error);
    return false;
  }
  try {
    show(name, draw(result.value));
    return true;
  } catch (error) {
    console.error(`dashboard: cannot draw the ${name} panel`, error);
    showError(name, new Error(`cannot show the API's answer: ${error.message}`));
    return false;
  }
}

function empty(testid, text, detail) {
  return el('div', {class: 'empty', testid}, el('strong', {}, text), detail ? el('p', {}, detail) : null);
}

function badge(text, kind, testid, value) {
  return el('span', {class: `badge ${kind}`, testid, dataset: {value: value ?? text}}, text);
}

function windowText(data) {
  return `${fmtTime(data.window_start)} → ${fmtTime(data.as_of)}`;
}

/** The window a panel shows, and its n, in the panel's heading. */
function setWindowTag(name, label, n, what = 'outcomes') {
  const node = document.querySelector(`[data-testid="${name}-window"]`);
  if (!node) return;
  node.textContent = n === null ? `(${label})` : `(${label} · n = ${fmtInt(n)} ${what})`;
  node.dataset.label = label;
  node.dataset.n = String(n);
}

function setAsOf(asOf) {
  const node = document.querySelector('[data-testid="as-of"]');
  node.textContent = fmtTime(asOf);
  node.dataset.value = asOf ?? 'null';
}

// --- dependency health

function drawHealth(health) {
  const rows = Object.entries(health.dependencies || {}).flatMap(([name, dep]) => [
    el('tr', {testid: `health-${name}`, class: 'dependency', dataset: {value: dep.status}},
      el('th', {}, name),
      el('td', {}, badge(dep.status, dep.status)),
      numberCell('td', dep.latency_ms, {digits: 1, suffix: ' ms'})),
    el('tr', {class: 'dependency-detail'}, el('td', {colspan: 3, class: 'detail'}, dep.detail || '')),
  ]);
  return [
    el('p', {class: 'headline'}, 'Overall ', badge(health.status, health.status, 'health-status'),
      el('span', {class: 'muted'}, ` checked ${fmtTime(health.checked_at, {seconds: true})}`)),
    el('table', {class: 'compact'}, el('tbody', {}, rows)),
  ];
}

// --- rollout and split (from the summary)

function share(counts) {
  const total = (counts.ml || 0) + (counts.heuristic || 0);
  return total ? counts.ml / total : null;
}

function drawSplit(summary) {
  const {split, flags} = summary;
  const enabled = flags ? flags.ml_enabled : null;
  const row = (label, key) => {
    const counts = split[key];
    const s = share(counts);
    return el('tr', {},
      el('th', {}, label),
      numberCell('td', counts.ml, {kind: 'int', testid: `split-${key}-ml`}),
      numberCell('td', counts.heuristic, {kind: 'int', testid: `split-${key}-heuristic`}),
      el('td', {class: 'num', testid: `split-${key}-share`, dataset: {value: String(s)}},
        fmtShare(s, 2)));
  };
  const bar = (label, key) => el('div', {class: 'bar-row'}, el('span', {class: 'muted'}, label),
    splitBar({share: share(split[key]), target: split.percentage, testid: `split-${key}-bar`}));
  return [
    el('p', {class: 'headline'}, 'Flags now ',
      enabled === null ? null : badge(enabled ? 'ML enabled' : 'ML disabled',
                                      enabled ? 'ok' : 'down', 'split-enabled', String(enabled)),
      ' at ',
      numberCell('strong', flags ? flags.ml_traffic_percentage : null,
                 {digits: 2, suffix: ' %', testid: 'split-flags-percentage'})),
    el('p', {}, 'ML share asked for over the window ',
      numberCell('strong', split.percentage, {digits: 2, suffix: ' %', testid: 'split-percentage'}),
      el('span', {class: 'muted'}, ' (marked on the bars)')),
    el('table', {class: 'compact'},
      el('thead', {}, el('tr', {}, el('th', {}, ''), el('th', {}, 'ML'), el('th', {}, 'Heuristic'),
        el('th', {}, 'ML share'))),
      el('tbody', {}, row('Assigned', 'assigned'), row('Arrived', 'arrived'))),
    bar('Assigned', 'assigned'),
    bar('Arrived', 'arrived'),
    el('p', {class: 'muted'}, `Predictions made and outcomes arrived in ${windowText(summary)}.`),
  ];
}

// --- P90 coverage: the share of outcomes whose actual delay stayed within the predicted P90

const tooFewP90 = (n) => n > 0 && n < MIN_P90_N;

function coverageTip(n, coverage) {
  if (!n) return 'no outcome with a P90';
  return `P90 coverage ${fmtShare(coverage, 1)} (n = ${fmtInt(n)}`
    + `${tooFewP90(n) ? `, too few to judge: fewer than ${MIN_P90_N}` : ''})`;
}

/** A cell with the coverage (exact in data-value) and its n; marked when n is too small. */
function coverageCell(tag, metrics, testid) {
  const n = metrics ? metrics.p90_n ?? 0 : 0;
  const coverage = n ? metrics.p90_coverage : null;
  const few = tooFewP90(n);
  return el(tag, {class: few ? 'num coverage few' : 'num coverage', title: coverageTip(n, coverage)},
    el('span', {testid: `${testid}-p90_coverage`, dataset: {value: String(coverage)}},
      fmtShare(coverage, 1)),
    el('span', {class: 'muted'}, ' n = ',
      el('span', {testid: `${testid}-p90_n`, dataset: {value: String(n)}}, fmtInt(n)),
      few ? el('span', {class: 'few-note', testid: `${testid}-p90-few`}, ' too few') : null));
}

// --- metrics per arm over the window (from the summary)

function drawSummary(summary) {
  setAsOf(summary.as_of);
  setWindowTag('summary', summary.window_label, summary.outcomes);
  setWindowTag('split', summary.window_label, summary.predictions, 'predictions');
  const counts = el('p', {class: 'muted'},
    `${summary.window_label}, ${windowText(summary)}: `,
    numberCell('span', summary.outcomes, {kind: 'int', testid: 'summary-outcomes'}),
    ' outcomes, ',
    numberCell('span', summary.predictions, {kind: 'int', testid: 'summary-predictions'}),
    ' predictions, ',
    numberCell('span', summary.alerts, {kind: 'int', testid: 'summary-alerts'}),
    ' alerts.');
  const arms = summary.arms || {};
  if (ARMS.every((arm) => !arms[arm] || !arms[arm].n)) {
    return [counts, empty('summary-empty', NO_OUTCOMES,
      'Metrics appear when actual pickup delays arrive and are joined to predictions.')];
  }
  const columns = [
    ['n', 'Outcomes', {kind: 'int'}],
    ['mae', 'MAE (min)', {digits: 2}],
    ['rmse', 'RMSE (min)', {digits: 2}],
    ['r2', 'R²', {digits: 3}],
    ['bias', 'Bias (min)', {digits: 2}],
    ['underestimate_share', 'Late by > 5 min', {digits: 3}],
  ];
  return [
    counts,
    el('table', {class: 'metrics'},
      el('thead', {}, el('tr', {}, el('th', {}, 'Arm'), columns.map(([, label]) => el('th', {}, label)),
        el('th', {}, 'P90 coverage'))),
      el('tbody', {}, ARMS.map((arm) => el('tr', {class: `arm-${arm}`},
        el('th', {}, el('span', {class: `swatch arm-${arm}`}), ARM_LABEL[arm]),
        columns.map(([key, , options]) => numberCell('td', arms[arm] ? arms[arm][key] : null,
          {...options, testid: `summary-${arm}-${key}`})),
        coverageCell('td', arms[arm], `summary-${arm}`))))),
    el('p', {class: 'muted'}, 'Bias is predicted − actual: negative means pickups later than predicted. '
      + `P90 coverage is the share of outcomes with a P90 whose pickup was no later than it: `
      + `${fmtShare(P90_LEVEL, 0)} when the P90s are honest; with fewer than ${MIN_P90_N} `
      + 'outcomes it is marked too few.'),
  ];
}

// --- A/B verdict

function fmtP(p) {
  if (p === null || p === undefined) return '—';
  return p < 0.0001 ? '< 0.0001' : fmtNumber(p, 4);
}

function drawAb(ab, label) {
  if (label) {
    const n = ab ? (ab.arms.ml.n || 0) + (ab.arms.heuristic.n || 0) : 0;
    setWindowTag('ab', label, n);
  }
  if (!ab) {
    return empty('ab-empty', NO_OUTCOMES, 'The A/B analysis needs outcomes in the window.');
  }
  const diff = ab.difference || {};
  const verdict = ab.verdict;
  const armRows = ARMS.map((arm) => {
    const a = (ab.arms || {})[arm] || {};
    return el('tr', {},
      el('th', {}, el('span', {class: `swatch arm-${arm}`}), ARM_LABEL[arm]),
      numberCell('td', a.n ?? null, {kind: 'int', testid: `ab-${arm}-n`}),
      numberCell('td', a.mae ?? null, {testid: `ab-${arm}-mae`}),
      el('td', {class: 'num'}, `[${fmtNumber(a.ci_low ?? null)}, ${fmtNumber(a.ci_high ?? null)}]`));
  });
  const strip = intervalStrip({
    testid: 'ab-interval',
    reference: 0,
    rows: [{label: 'ML − heur.', point: diff.mae_ml_minus_heuristic ?? null,
            low: diff.ci_low ?? null, high: diff.ci_high ?? null, className: 'difference'}],
  });
  return [
    el('p', {class: 'headline'},
      badge(VERDICT_LABEL[verdict] || verdict, `verdict-${verdict}`, 'ab-verdict', verdict),
      el('span', {class: 'muted'}, ` ${fmtTime(ab.window_start)} → ${fmtTime(ab.window_end)}`)),
    el('p', {},
      'MAE ML − heuristic ',
      numberCell('strong', diff.mae_ml_minus_heuristic ?? null, {testid: 'ab-difference', suffix: ' min'}),
      ', 95 % CI [',
      numberCell('span', diff.ci_low ?? null, {testid: 'ab-ci-low'}),
      ', ',
      numberCell('span', diff.ci_high ?? null, {testid: 'ab-ci-high'}),
      '], p = ',
      el('span', {class: 'num', testid: 'ab-p-value', dataset: {value: String(diff.p_value ?? null)}},
        fmtP(diff.p_value))),
    strip,
    el('table', {class: 'compact'},
      el('thead', {}, el('tr', {}, el('th', {}, 'Arm'), el('th', {}, 'n'), el('th', {}, 'MAE'),
        el('th', {}, '95 % CI'))),
      el('tbody', {}, armRows)),
    ab.reasons && ab.reasons.length
      ? el('ul', {class: 'reasons', testid: 'ab-reasons'},
        ab.reasons.map((reason) => el('li', {}, reason)))
      : null,
    el('p', {class: 'muted'}, `A verdict needs at least ${fmtInt(ab.min_samples)} outcomes per arm.`),
  ];
}

// --- flags

function drawFlags(flags) {
  const input = document.getElementById('percentage');
  if (input.value === '' && document.activeElement !== input) {
    input.value = String(flags.ml_traffic_percentage);
  }
  const changes = flags.recent_changes || [];
  return [
    el('p', {class: 'headline'},
      badge(flags.ml_enabled ? 'ML enabled' : 'ML disabled', flags.ml_enabled ? 'ok' : 'down',
            'flags-enabled', String(flags.ml_enabled)),
      ' at ',
      numberCell('strong', flags.ml_traffic_percentage, {digits: 2, suffix: ' %',
                                                          testid: 'flags-percentage'}),
      el('span', {class: 'muted'}, ' version ',
        el('span', {testid: 'flags-version', dataset: {value: String(flags.version)}},
          flags.version === null ? '—' : String(flags.version)),
        ', from ', el('span', {testid: 'flags-source'}, flags.source))),
    flags.source === 'settings'
      ? el('p', {class: 'warning'}, 'Redis is unreachable or holds no flags: these are the settings\' initial values.')
      : null,
    changes.length
      ? el('details', {},
        el('summary', {}, `Recent changes (${changes.length})`),
        el('table', {class: 'compact'}, el('tbody', {}, changes.map((c) => el('tr', {testid: 'flag-change-row'},
          el('td', {}, fmtTime(c.changed_at, {seconds: true})),
          el('td', {}, c.actor),
          el('td', {}, `${c.old_ml_enabled ? 'on' : 'off'} ${fmtNumber(c.old_ml_traffic_percentage, 2)} % → `
            + `${c.new_ml_enabled ? 'on' : 'off'} ${fmtNumber(c.new_ml_traffic_percentage, 2)} %`))))))
      : el('p', {class: 'muted'}, 'No flag changes recorded.'),
  ];
}

// --- the pipeline, from /metrics over time

const PIPELINE_MINUTES = 15;
const SIGNAL_LABEL = {stalled: 'stalled', lag_growing: 'lag growing'};

/** Series of one field of the points: ``pick(point)`` gives {name: value}. */
function pipelineSeries(points, pick, names, unit, digits = 2) {
  const keys = names || [...new Set(points.flatMap((p) => Object.keys(pick(p) || {})))].sort();
  return keys.map((name, i) => ({
    name,
    arm: name === 'ml' || name === 'heuristic' ? name : `s${i % 5}`,
    label: ARM_LABEL[name] || name,
    points: points.filter((p) => pick(p) && pick(p)[name] !== null && pick(p)[name] !== undefined)
      .map((p) => ({
        t: Date.parse(p.at),
        v: pick(p)[name],
        tip: `${ARM_LABEL[name] || name} ${fmtTime(p.at, {seconds: true})}: `
          + `${fmtNumber(pick(p)[name], digits)}${unit}`,
      })),
  }));
}

function pipelineFigure(prefix, caption, series, domain, stepMs, unit, digits, include = [0]) {
  const legendItems = series.map((s) => el('span', {class: 'legend-item'},
    el('span', {class: `swatch arm-${s.arm}`}), `${s.label} `,
    numberCell('strong', s.points.length ? s.points.at(-1).v : null,
               {digits, suffix: unit, testid: `pipeline-${prefix}-${s.name.replace(/\W+/g, '_')}`})));
  return el('figure', {},
    el('figcaption', {}, caption),
    el('div', {class: 'legend'}, legendItems.length ? legendItems : el('span', {class: 'muted'}, 'none')),
    series.some((s) => s.points.length)
      ? lineChart({label: caption, series, domain, stepMs, include, digits,
                   testid: `pipeline-${prefix}-chart`})
      : empty(`pipeline-${prefix}-empty`, 'no data yet'));
}

function drawPipeline(data) {
  const points = data.points || [];
  if (!points.length) {
    return empty('pipeline-empty', 'no samples yet',
      'The API samples /metrics every 5 s: rates appear after the second sample.');
  }
  const stepMs = data.sample_s * 1000;
  const t1 = Date.parse(points.at(-1).at);
  const domain = [t1 - data.minutes * 60e3, t1];
  const flow = (p) => ({bookings: p.bookings_per_s, ...(p.predictions_per_s || {}),
                        outcomes: p.outcomes_per_s});
  const latency = (p) => ({p50: p.latency_p50_ms, p99: p.latency_p99_ms});
  const weather = (p) => ({'hit ratio': p.weather_hit_ratio});
  const signals = data.signals || [];
  return [
    el('p', {class: 'headline', testid: 'pipeline-status',
             dataset: {value: signals.length ? signals.map((s) => s.kind).join(',') : 'ok'}},
      signals.length ? null : badge('flowing', 'ok'),
      signals.length ? el('ul', {class: 'signals'}, signals.map((s) => el('li', {testid: 'pipeline-signal',
        dataset: {kind: s.kind, group: s.group}},
        badge(SIGNAL_LABEL[s.kind] || s.kind, s.kind === 'stalled' ? 'down' : 'degraded'), ' ', s.text))) : null,
      el('span', {class: 'muted'}, ` ${fmtInt(points.length)} steps of ${data.sample_s} s, the newest at `
        + `${fmtTime(points.at(-1).at, {seconds: true})}`)),
    el('div', {class: 'pipeline-grid'},
      pipelineFigure('flow', 'Bookings, predictions per arm and outcomes (per s)',
        pipelineSeries(points, flow, ['bookings', 'ml', 'heuristic', 'outcomes'], '/s', 1),
        domain, stepMs, '/s', 1),
      pipelineFigure('latency', 'Latency, booking → prediction (ms)',
        pipelineSeries(points, latency, ['p50', 'p99'], ' ms', 0), domain, stepMs, ' ms', 0),
      pipelineFigure('lag', 'Consumer lag per group (messages)',
        pipelineSeries(points, (p) => p.lag, null, '', 0), domain, stepMs, '', 0),
      pipelineFigure('dead', 'Dead letters per kind (per s)',
        pipelineSeries(points, (p) => p.dead_letters_per_s, null, '/s', 2), domain, stepMs, '/s', 2),
      pipelineFigure('fallbacks', 'Fallbacks per reason (per s)',
        pipelineSeries(points, (p) => p.fallbacks_per_s, null, '/s', 2), domain, stepMs, '/s', 2),
      pipelineFigure('weather', 'Weather cache hit ratio',
        pipelineSeries(points, weather, ['hit ratio'], '', 3), domain, stepMs, '', 3, [0, 1])),
  ];
}

// --- charts

const periodOf = (row) => (row.period_start ? fmtTime(row.period_start) : row.day);

/** A metric per arm; a period with too few outcomes (``few``) is a hollow point on the
 * bottom axis, with no figure: its n says why. */
function armSeries(rows, key, toTime, digits) {
  const name = key === 'r2' ? 'R²' : 'MAE';
  return ARMS.map((arm) => ({
    arm,
    label: ARM_LABEL[arm],
    points: rows.filter((row) => row.arm === arm && (row.few
                                                     || (row[key] !== null && row[key] !== undefined)))
      .map((row) => ({
        t: toTime(row),
        v: row.few ? null : row[key],
        few: Boolean(row.few),
        tip: row.few
          ? `${ARM_LABEL[arm]} ${periodOf(row)}: too few outcomes for a ${name} (n = ${fmtInt(row.n)})`
          : `${ARM_LABEL[arm]} ${periodOf(row)}: ${name} ${fmtNumber(row[key], digits)} (n = ${fmtInt(row.n)})`,
      })),
  }));
}

/** Coverage per arm; a period with too few outcomes with a P90 is a hollow point off the line. */
function coverageSeries(rows, toTime) {
  return ARMS.map((arm) => ({
    arm,
    label: ARM_LABEL[arm],
    points: rows.filter((row) => row.arm === arm && row.p90_n > 0).map((row) => ({
      t: toTime(row),
      v: row.p90_coverage,
      few: tooFewP90(row.p90_n),
      tip: `${ARM_LABEL[arm]} ${periodOf(row)}: ${coverageTip(row.p90_n, row.p90_coverage)}`,
    })),
  }));
}

function legend(prefix, rows) {
  return el('div', {class: 'legend'}, ARMS.map((arm) => {
    const latest = rows.filter((row) => row.arm === arm && row.n > 0).at(-1);
    return el('span', {class: `legend-item arm-${arm}`, testid: `${prefix}-latest-${arm}`,
                       dataset: {at: latest ? latest.period_start || latest.day : 'null'}},
      el('span', {class: `swatch arm-${arm}`}),
      `${ARM_LABEL[arm]} latest: MAE `,
      numberCell('strong', latest ? latest.mae : null, {testid: `${prefix}-latest-mae-${arm}`}),
      ', R² ',
      numberCell('strong', latest ? latest.r2 : null, {digits: 3, testid: `${prefix}-latest-r2-${arm}`}),
      ', P90 coverage ',
      coverageCell('strong', latest, `${prefix}-latest-${arm}`),
      latest ? el('span', {class: 'muted'}, ` (${periodOf(latest)}, n = ${fmtInt(latest.n)})`) : null);
  }));
}

function chartPair(prefix, data, toTime, stepMs, markers) {
  // Whole periods: a day's point sits at its noon, inside [its midnight, the next midnight].
  const domain = [Math.floor(Date.parse(data.window_start) / stepMs) * stepMs,
                  Math.ceil(Date.parse(data.as_of) / stepMs) * stepMs];
  const rows = data.series || [];
  const maeSeries = armSeries(rows, 'mae', toTime, 2);
  const r2Series = armSeries(rows, 'r2', toTime, 3);
  const hasR2 = r2Series.some((s) => s.points.length);
  const p90Series = coverageSeries(rows, toTime);
  const hasP90 = p90Series.some((s) => s.points.length);
  return [
    el('p', {class: 'muted'}, windowText(data), ' · ',
      numberCell('span', rows.filter((row) => row.n > 0).length,
                 {kind: 'int', testid: `${prefix}-rows`}),
      ` ${prefix === 'daily' ? 'days' : `periods of ${stepText(stepMs)}`} × arms with outcomes`),
    legend(prefix, rows),
    el('div', {class: 'chart-pair'},
      el('figure', {},
        el('figcaption', {}, 'MAE (minutes)'),
        lineChart({label: 'MAE per arm', series: maeSeries, domain, stepMs, markers, include: [0],
                   testid: `${prefix}-mae-chart`})),
      // Beside the MAE: an arm can hold its MAE while its P90s stop meaning what they say.
      el('figure', {},
        el('figcaption', {}, `P90 coverage (${fmtShare(P90_LEVEL, 0)} dashed; hollow: fewer than `
          + `${MIN_P90_N} outcomes with a P90)`),
        hasP90
          ? lineChart({label: 'P90 coverage per arm', series: p90Series, domain, stepMs,
                       markers: markers.filter((m) => m.kind === 'interval_coverage'),
                       include: [0.8, 1], reference: P90_LEVEL, digits: 3,
                       testid: `${prefix}-p90-chart`})
          : empty(`${prefix}-p90-empty`, 'no P90 yet',
                  'Coverage appears when the predictions carry a P90 (delay_p90_minutes).')),
      el('figure', {},
        el('figcaption', {}, 'R²'),
        hasR2
          ? lineChart({label: 'R² per arm', series: r2Series, domain, stepMs, include: [0, 1],
                       digits: 3, testid: `${prefix}-r2-chart`})
          : empty(`${prefix}-r2-empty`, 'no R² yet',
                  'R² needs at least two outcomes with different actual delays per period.'))),
  ];
}

const isDrift = (kind) => String(kind).includes('drift');

function alertMarkers(alerts) {
  return alerts.map((a) => ({
    t: Date.parse(a.event_time),
    kind: a.kind,
    drift: isDrift(a.kind),
    tip: `${fmtTime(a.event_time)} ${a.kind} (${a.severity}) ${a.subject}: ${a.message}`,
  }));
}

const hasOutcomes = (series) => (series || []).some((row) => row.n > 0);

function stepText(stepMs) {
  if (stepMs >= DAY_MS) return 'a day';
  if (stepMs >= 3600e3) return `${stepMs / 3600e3} h`;
  return `${stepMs / 60e3} min`;
}

function drawHourly(metrics, alerts) {
  setAsOf(metrics.as_of);
  const stepMs = metrics.step_seconds * 1000;
  const n = (metrics.series || []).reduce((sum, row) => sum + row.n, 0);
  setWindowTag('hourly', `${metrics.window_label}, per ${stepText(stepMs)}`, n);
  if (!hasOutcomes(metrics.series)) {
    return empty('hourly-empty', NO_OUTCOMES, `No live outcomes in ${windowText(metrics)}.`);
  }
  return [
    ...chartPair('hourly', metrics, (row) => Date.parse(row.period_start) + stepMs / 2, stepMs,
                 alertMarkers(alerts)),
    el('p', {class: 'muted'}, `A hollow point on the axis is a period with fewer than `
      + `${fmtInt(metrics.min_point_outcomes)} outcomes: too few for a figure.`),
  ];
}

function drawDaily(daily) {
  if (!hasOutcomes(daily.series)) {
    return empty('daily-empty', NO_OUTCOMES, `No live outcomes in ${windowText(daily)}.`);
  }
  return chartPair('daily', daily, (row) => Date.parse(`${row.day}T12:00:00Z`), DAY_MS, []);
}

// --- alerts

function drawAlerts(alerts, metrics, label) {
  const items = alerts.items || [];
  const drift = items.filter((a) => isDrift(a.kind)).length;
  let onChart = null;
  if (metrics) {
    const [t0, t1] = [Date.parse(metrics.window_start), Date.parse(metrics.as_of)];
    onChart = items.filter((a) => {
      const t = Date.parse(a.event_time);
      return t >= t0 && t <= t1;
    }).length;
  }
  setWindowTag('alerts', label, items.length, 'alerts');
  const head = el('p', {class: 'headline'},
    numberCell('strong', items.length, {kind: 'int', testid: 'alerts-count'}), ' alerts, ',
    numberCell('strong', drift, {kind: 'int', testid: 'alerts-drift-count'}), ' of them drift',
    el('span', {class: 'muted'}, ` (${label}`,
      onChart === null ? ')' : [', ', numberCell('span', onChart, {kind: 'int', testid: 'alerts-on-chart'}), ' marked on the chart)']));
  if (!items.length) return [head, empty('alerts-empty', 'no alerts', `Nothing raised: ${label}.`)];
  return [
    head,
    el('div', {class: 'scroll'}, el('table', {class: 'list'},
      el('thead', {}, el('tr', {}, ['Event time', 'Kind', 'Severity', 'Subject', 'Message']
        .map((h) => el('th', {}, h)))),
      el('tbody', {}, items.map((a) => el('tr', {testid: 'alert-row', class: isDrift(a.kind) ? 'drift' : null,
                                             dataset: {kind: a.kind, id: a.alert_id}},
        el('td', {class: 'time'}, fmtTime(a.event_time, {seconds: true})),
        el('td', {}, badge(a.kind, isDrift(a.kind) ? 'drift' : 'alert')),
        el('td', {}, badge(a.severity, `severity-${a.severity}`)),
        el('td', {}, a.subject),
        el('td', {class: 'message'}, a.message)))))),
  ];
}

// --- predictions

function drawPredictions(data) {
  const items = data.items || [];
  const head = el('p', {class: 'muted'}, 'Newest first: ',
    numberCell('span', items.length, {kind: 'int', testid: 'predictions-count'}), ' shown.');
  if (!items.length) return [head, empty('predictions-empty', 'no predictions yet')];
  const headers = ['Booking', 'Predicted at', 'Pickup', 'Delay (min)', 'Confidence', 'Risk', 'Arm',
                   'Served by', 'Model', 'Fallback', 'Latency (ms)'];
  return [
    head,
    el('div', {class: 'scroll'}, el('table', {class: 'list'},
      el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
      el('tbody', {}, items.map((p) => el('tr', {testid: 'prediction-row', dataset: {bookingId: p.booking_id}},
        el('td', {class: 'mono', testid: 'prediction-booking-id'}, p.booking_id),
        el('td', {class: 'time'}, fmtTime(p.predicted_at, {seconds: true})),
        el('td', {class: 'time'}, fmtTime(p.scheduled_pickup_at)),
        numberCell('td', p.predicted_delay_minutes, {digits: 1}),
        numberCell('td', p.confidence, {digits: 2}),
        el('td', {}, badge(p.risk_level, `risk-${p.risk_level}`)),
        el('td', {}, el('span', {class: `swatch arm-${p.arm}`}), ARM_LABEL[p.arm] || p.arm),
        el('td', {}, ARM_LABEL[p.served_by] || p.served_by),
        el('td', {class: 'mono'}, p.model_version),
        el('td', {}, p.fallback_reason || ''),
        numberCell('td', p.latency_ms ?? null, {digits: 1})))))),
  ];
}

// ---------------------------------------------------------------------------------------------
// Refresh

let refreshing = null;
let again = false;
let timer = null;

function windowParams() {
  const select = document.getElementById('window');
  return {
    windowName: select.value,
    label: select.selectedOptions[0].textContent,
    days: Number(document.getElementById('days').value),
  };
}

async function loadAb(summary, windowName, label) {
  if (summary.ok) {
    // The summary carries the report of its window (null when the window has no outcomes).
    return render('ab', summary, (s) => drawAb(s.ab, s.window_label));
  }
  // Without the summary, ask for the report itself: the panel does not fail with it.
  const report = await settle(getJson(`/api/ab/report?window=${windowName}`));
  return render('ab', report, (r) => drawAb(r, label));
}

async function refreshOnce() {
  const {windowName, label, days} = windowParams();
  const calls = {
    health: settle(getJson('/api/health', {accept: [200, 503]})),
    summary: settle(getJson(`/api/ml-monitoring/summary?window=${windowName}`)),
    metrics: settle(getJson(`/api/ml-monitoring/metrics?window=${windowName}`)),
    daily: settle(getJson(`/api/ml-monitoring/daily?days=${days}`)),
    alerts: settle(getJson(`/api/alerts?window=${windowName}&limit=100`)),
    predictions: settle(getJson('/api/ml-monitoring/predictions?limit=50')),
    pipeline: settle(getJson(`/api/pipeline?minutes=${PIPELINE_MINUTES}`)),
    flags: settle(getJson('/api/feature-flags/status')),
    ramp: settle(getJson('/api/ramp/status')),
    shadow: settle(getJson(`/api/shadow/report?window=${windowName}`)),
    labels: settle(getJson('/api/labels/coverage')),
    estimated: settle(getJson('/api/ml-monitoring/estimated?hours=24&ahead_hours=6')),
    timeline: settle(getJson('/api/timeline?hours=24&limit=200')),
  };
  const outcomes = await Promise.all([
    calls.health.then((r) => render('health', r, drawHealth)),
    calls.summary.then(async (r) => [
      render('summary', r, drawSummary),
      render('split', r, drawSplit),
      await loadAb(r, windowName, label),
    ]),
    Promise.all([calls.metrics, calls.alerts]).then(([m, a]) => [
      render('hourly', m, (data) => drawHourly(data, a.ok ? a.value.items || [] : [])),
      render('alerts', a, (data) => drawAlerts(data, m.ok ? m.value : null, label)),
    ]),
    calls.daily.then((r) => render('daily', r, drawDaily)),
    calls.predictions.then((r) => render('predictions', r, drawPredictions)),
    calls.pipeline.then((r) => render('pipeline', r, drawPipeline)),
    calls.flags.then((r) => render('flags', r, drawFlags)),
    calls.ramp.then((r) => render('ramp', r, drawRamp)),
    calls.shadow.then((r) => render('shadow', r, (data) => {
      setWindowTag('shadow', label, (data.comparisons || []).reduce(
        (n, c) => (c.against === 'served' ? n + c.n : n), 0), 'paired bookings');
      return drawShadow(data);
    })),
    calls.labels.then((r) => render('labels', r, drawLabels)),
    calls.estimated.then((r) => render('estimated', r, drawEstimated)),
    calls.timeline.then((r) => render('timeline', r, drawTimeline)),
  ]);
  return outcomes.flat().filter((ok) => !ok).length;
}

/** Refresh every panel; a call during a refresh runs one more right after it. */
function refresh() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  clearTimeout(timer);
  refreshing = refreshOnce().then((failed) => {
    probe.refreshes += 1;
    const now = new Date();
    const stamp = document.querySelector('[data-testid="updated-at"]');
    stamp.textContent = `updated at ${fmtTime(now.toISOString(), {seconds: true})}`
      + (failed ? ` · ${failed} panel${failed > 1 ? 's' : ''} failed` : '');
    stamp.dataset.value = now.toISOString();
    stamp.dataset.failed = String(failed);
    document.body.dataset.refreshes = String(probe.refreshes);
    if (probe.firstLoadMs === null) {
      probe.firstLoadMs = performance.now();
      document.body.dataset.state = 'loaded';
    }
  }).finally(() => {
    refreshing = null;
    if (again) {
      again = false;
      refresh();
    } else {
      timer = setTimeout(refresh, REFRESH_MS);
    }
  });
  return refreshing;
}

// ---------------------------------------------------------------------------------------------
// Flag controls

function flagMessage(text, kind, status) {
  const node = document.querySelector('[data-testid="flag-message"]');
  node.textContent = text;
  node.className = `flag-message ${kind}`;
  node.dataset.status = String(status ?? '');
}

async function changeFlags(action) {
  const token = document.getElementById('token').value.trim();
  const actor = document.getElementById('actor').value.trim() || 'dashboard';
  const body = {actor};
  if (action === 'enable') {
    const raw = document.getElementById('percentage').value.trim();
    // Sent as typed; the API validates it and its message is shown.
    if (raw !== '') body.percentage = Number.isFinite(Number(raw)) ? Number(raw) : raw;
  }
  const headers = {'Content-Type': 'application/json', Accept: 'application/json'};
  if (token) headers.Authorization = `Bearer ${token}`;
  const buttons = document.querySelectorAll('.flag-controls button');
  buttons.forEach((b) => { b.disabled = true; });
  flagMessage('sending…', 'pending');
  try {
    const response = await fetch(`${ROOT}/api/feature-flags/ml/${action}`, {
      method: 'POST', headers, body: JSON.stringify(body), cache: 'no-store',
    });
    const data = await response.json().catch(() => null);
    if (!response.ok || data === null) {
      flagMessage(`HTTP ${response.status}: ${detailOf(response.status, data)}`, 'error', response.status);
      return;
    }
    render('flags', {ok: true, value: data}, drawFlags);
    document.getElementById('percentage').value = String(data.ml_traffic_percentage);
    flagMessage(
      `${data.ml_enabled ? 'ML enabled' : 'ML disabled'} at ${fmtNumber(data.ml_traffic_percentage, 2)} %`
        + ` (version ${data.version}); workers follow within a second.`,
      'ok', response.status);
    refresh();
  } catch (error) {
    flagMessage(`cannot reach the API: ${error.message}`, 'error', 0);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function setUpControls() {
  const token = document.getElementById('token');
  token.value = sessionStorage.getItem(TOKEN_KEY) || '';
  token.addEventListener('input', () => {
    if (token.value) sessionStorage.setItem(TOKEN_KEY, token.value);
    else sessionStorage.removeItem(TOKEN_KEY);
  });
  // A token typed in (Enter, or leaving the field) may open the reads: read again at once.
  token.addEventListener('change', () => refresh());
  const actor = document.getElementById('actor');
  actor.value = sessionStorage.getItem(ACTOR_KEY) || '';
  actor.addEventListener('input', () => sessionStorage.setItem(ACTOR_KEY, actor.value));
  for (const button of document.querySelectorAll('[data-quick]')) {
    button.addEventListener('click', () => {
      document.getElementById('percentage').value = button.dataset.quick;
    });
  }
  document.getElementById('enable').addEventListener('click', () => changeFlags('enable'));
  document.getElementById('disable').addEventListener('click', () => changeFlags('disable'));
  document.getElementById('refresh').addEventListener('click', () => refresh());
  document.getElementById('window').addEventListener('change', () => refresh());
  document.getElementById('days').addEventListener('change', () => refresh());
}

setUpControls();
refresh();
