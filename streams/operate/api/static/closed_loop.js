// The closed loop's panels: the guarded ramp, the challenger in shadow, label coverage, each
// hour's MAE estimated then realized, and the incident timeline. Each draws one API answer.

import {el, fmtInt, fmtNumber, fmtShare, fmtTime, numberCell} from './dom.js';

const ARM_LABEL = {ml: 'ML', heuristic: 'Heuristic'};

function empty(testid, text, detail) {
  return el('div', {class: 'empty', testid}, el('strong', {}, text), detail ? el('p', {}, detail) : null);
}

function badge(text, kind, testid) {
  return el('span', {class: `badge ${kind}`, testid, dataset: {value: text}}, text);
}

function table(headers, rows) {
  return el('div', {class: 'scroll'}, el('table', {class: 'list'},
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows)));
}

// --- ramp

export function drawRamp(view) {
  const ramp = view.ramp;
  const flags = view.flags;
  const allowed = badge(view.next_step_allowed ? 'next step allowed' : 'next step blocked',
    view.next_step_allowed ? 'ok' : 'alert', 'ramp-next');
  if (!ramp) {
    return [el('p', {class: 'headline'}, 'No guarded ramp has been started.'),
      el('p', {class: 'muted', testid: 'ramp-summary'}, view.summary)];
  }
  const head = el('p', {class: 'headline'},
    badge(ramp.status.replace('_', ' '), `ramp-${ramp.status}`, 'ramp-status'), ' at ',
    numberCell('strong', ramp.percentage, {digits: 0, suffix: ' %', testid: 'ramp-percentage'}),
    ` of steps ${ramp.steps.join(' → ')} % · flags: ML ${flags.ml_enabled ? 'on' : 'off'} at `,
    `${fmtNumber(flags.ml_traffic_percentage, 0)} % · `, allowed);
  const nodes = [head, el('p', {testid: 'ramp-summary'}, view.summary)];
  const checks = view.checks || [];
  if (checks.length) {
    nodes.push(table(['', 'Kind', 'Check', 'Detail'], checks.map((c) =>
      el('tr', {testid: 'ramp-check', dataset: {name: c.name, ok: String(c.ok)}},
        el('td', {}, c.judged === false ? '–' : (c.ok ? '✓' : '✗')), el('td', {}, c.kind),
        el('td', {class: 'mono'}, c.name),
        el('td', {class: 'message'}, c.detail)))));
  }
  const moves = (view.moves || []).slice(-8).reverse();
  if (moves.length) {
    nodes.push(el('h3', {}, 'Moves, newest first'));
    nodes.push(table(['Time', 'Move', 'From → to', 'By', 'Why'], moves.map((m) =>
      el('tr', {testid: 'ramp-move', dataset: {kind: m.kind}},
        el('td', {class: 'time'}, fmtTime(m.at, {seconds: true})), el('td', {}, m.kind),
        el('td', {}, `${fmtNumber(m.from_percentage, 0)} → ${fmtNumber(m.to_percentage, 0)} %`),
        el('td', {}, m.actor), el('td', {class: 'message'}, m.reason)))));
  }
  return nodes;
}

// --- shadow

export function drawShadow(report) {
  const rows = report.comparisons || [];
  if (!rows.length) {
    return [empty('shadow-empty', 'no challenger in shadow',
      'delaycast retrain registers a challenger; the prediction path then scores it on every booking.')];
  }
  return [
    el('p', {class: 'muted'}, 'Challenger − served, paired on identical bookings (negative: the challenger errs less).'),
    table(['Challenger', 'Against', 'n', 'MAE challenger', 'MAE against', 'Difference', '95 % interval', 'p'],
      rows.map((c) => el('tr', {testid: 'shadow-row', dataset: {against: c.against}},
        el('td', {class: 'mono'}, c.challenger), el('td', {}, c.against),
        numberCell('td', c.n, {kind: 'int'}), numberCell('td', c.mae_challenger),
        numberCell('td', c.mae_against), numberCell('td', c.difference, {digits: 3, testid: 'shadow-difference'}),
        el('td', {}, `${fmtNumber(c.ci_low, 3)} to ${fmtNumber(c.ci_high, 3)}`),
        el('td', {}, c.p_value < 0.001 ? '< 0.001' : fmtNumber(c.p_value, 3))))),
    el('p', {class: 'muted'}, `${fmtInt((report.hours || []).length)} hour buckets in the window.`),
  ];
}

// --- label coverage

export function drawLabels(report) {
  const arms = report.arms || [];
  const head = el('p', {class: 'muted'},
    `Bookings picked up ${fmtTime(report.pickups_from)} → ${fmtTime(report.pickups_until)}, `
    + `an actual due ${fmtNumber(report.wait_minutes, 0)} min after pickup; target ${fmtShare(report.target, 0)}.`);
  if (!arms.some((a) => a.due > 0)) return [head, empty('labels-empty', 'no actual due yet')];
  return [head, table(['Arm', 'Due', 'Arrived', 'Coverage', 'Missing', ''], arms.map((a) =>
    el('tr', {testid: 'labels-row', dataset: {arm: a.arm}},
      el('td', {}, ARM_LABEL[a.arm] || a.arm), numberCell('td', a.due, {kind: 'int'}),
      numberCell('td', a.arrived, {kind: 'int'}),
      el('td', {testid: 'labels-coverage', dataset: {value: String(a.coverage)}}, fmtShare(a.coverage)),
      el('td', {}, fmtShare(a.missing_share)),
      el('td', {}, a.below_target ? badge('below target', 'alert', 'labels-below') : ''))))];
}

// --- estimated, then realized

export function drawEstimated(report) {
  const hours = report.hours || [];
  if (!hours.length) return [empty('estimated-empty', 'no predictions in these hours')];
  const error = report.estimate_error || {};
  return [
    el('p', {class: 'muted'}, 'Per hour of scheduled pickup: the MAE expected from the P90s as soon as '
      + 'the predictions are made, the realized MAE as actuals arrive. Estimate error (mean |est − real| '
      + `over ${fmtInt(error.hours)} settled hours): `,
    numberCell('strong', error.mean_abs ?? null, {testid: 'estimate-error'}), ' min, bias ',
    numberCell('span', error.bias ?? null), ' min.'),
    table(['Pickup hour', 'Arm', 'n', 'Estimated MAE', 'Realized MAE', 'Actuals', 'Shown', 'Estimate error'],
      hours.slice(-48).reverse().map((h) => el('tr', {testid: 'estimated-row', dataset: {status: h.status}},
        el('td', {class: 'time'}, fmtTime(h.hour_start)), el('td', {}, ARM_LABEL[h.arm] || h.arm),
        numberCell('td', h.n, {kind: 'int'}), numberCell('td', h.estimated_mae),
        numberCell('td', h.realized_mae), numberCell('td', h.n_realized, {kind: 'int'}),
        el('td', {}, h.status), numberCell('td', h.estimate_error)))),
  ];
}

// --- timeline

export function drawTimeline(data) {
  const items = (data.items || []).slice().reverse();
  if (!items.length) return [empty('timeline-empty', 'nothing happened in these hours')];
  return [table(['Time', 'Source', 'What', 'Detail', 'Evidence'], items.map((e) =>
    el('tr', {testid: 'timeline-row', dataset: {kind: e.kind, source: e.source}},
      el('td', {class: 'time'}, fmtTime(e.at, {seconds: true})), el('td', {}, e.source),
      el('td', {}, e.title), el('td', {class: 'message'}, e.detail),
      el('td', {}, el('a', {href: (document.body.dataset.root || '') + e.link, class: 'mono'}, e.link)))))];
}
