import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseRecord } from '../src/record';
import { trialsChart } from '../src/charts';
import { bestParams, MAX_PARAM_COLUMNS, trialsTable } from '../src/sweep';
import { rawRecord } from './fixtures';

function sweepRecord(sweep: unknown): unknown {
  return { ...(rawRecord() as Record<string, unknown>), schema: 3, sweep };
}

const SWEEP = {
  study: 'tpe',
  sampler: 'tpe',
  metric: 'val/loss',
  goal: 'min',
  objective: 'last',
  trials_total: 3,
  best: 2,
  trials_omitted: 0,
  trials: [
    { number: 2, name: 's-2', run_id: 'r2', state: 'COMPLETE', value: 0.1,
      params: { lr: '0.01', opt: "'adam'" }, curve: { steps: [0, 1], values: [0.5, 0.1] } },
    { number: 0, name: 's-0', run_id: null, state: 'PRUNED', value: 0.7,
      params: { lr: '0.001', opt: "'sgd'" }, curve: { steps: [0, 1], values: [0.8, 'NaN'] } },
    { number: 1, name: 's-1', run_id: null, state: 'bogus', value: null, params: { lr: 5 } }
  ]
};

test("a sweep's trials are read, ranked as written, the best's params ready to copy", () => {
  const result = parseRecord(sweepRecord(SWEEP));
  assert.ok(result.ok);
  const sweep = result.record.sweep;
  assert.ok(sweep);
  assert.deepEqual(sweep.trials.map(t => t.number), [2, 0, 1]);
  assert.equal(sweep.trials[2].state, 'FAILED'); // an unknown state is not trusted
  assert.equal(sweep.trials[2].params.size, 0); // a param that is not text is left out
  assert.deepEqual(bestParams(sweep), {
    lines: "lr = 0.01\nopt = 'adam'",
    dict: "{\"lr\": 0.01, \"opt\": 'adam'}"
  });
  const table = trialsTable(sweep);
  assert.deepEqual(table.header, ['trial', 'state', 'val/loss (last) ↓', 'lr', 'opt']);
  assert.deepEqual(table.rows[0], ['#2 ★ best', 'COMPLETE', '0.1', '0.01', "'adam'"]);
  const chart = trialsChart(sweep);
  assert.ok(chart);
  assert.deepEqual(chart.series.map(s => s.label), ['#2 (best)', '#0 pruned']);
  assert.equal(chart.logAllowed, false); // a NaN point
});

test('a record without a sweep, or with an unreadable one, still reads', () => {
  const plain = parseRecord(rawRecord());
  assert.ok(plain.ok);
  assert.equal(plain.record.sweep, null);
  const broken = parseRecord(sweepRecord('nonsense'));
  assert.ok(broken.ok);
  assert.equal(broken.record.sweep, null);
  assert.ok(broken.warnings.some(w => w.includes('sweep')));
});

test("a hostile sweep's params make a table of bounded size", () => {
  // 200 trials of 250 different param names each made a table of 200 x 50,000 cells,
  // built as the output rendered (found by an attacker's review).
  const trials = Array.from({ length: 200 }, (_, n) => ({
    number: n, name: `t-${n}`, run_id: null, state: 'COMPLETE', value: n,
    params: Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`p${n}_${i}`, '1']))
  }));
  const result = parseRecord(sweepRecord({ ...SWEEP, best: 0, trials_total: 200, trials }));
  assert.ok(result.ok);
  const sweep = result.record.sweep;
  assert.ok(sweep);
  const table = trialsTable(sweep);
  assert.equal(table.header.length, 3 + MAX_PARAM_COLUMNS);
  assert.ok(table.rows.every(row => row.length === table.header.length));
  assert.deepEqual(table.header.slice(3, 5), ['p0_0', 'p0_1']);
});

test('only literal params are offered as code to paste', () => {
  // A record from anyone must not offer a call as "the best params, ready to paste".
  const trial = (params: Record<string, string>) => ({
    ...SWEEP, best: 2, trials: [{ ...SWEEP.trials[0], params }]
  });
  const read = (params: Record<string, string>) => {
    const result = parseRecord(sweepRecord(trial(params)));
    assert.ok(result.ok && result.record.sweep);
    return bestParams(result.record.sweep);
  };
  assert.deepEqual(read({ lr: '1e-3', hidden: '(64, 128)', act: "'relu'", drop: 'None' }), {
    lines: "lr = 1e-3\nhidden = (64, 128)\nact = 'relu'\ndrop = None",
    dict: "{\"lr\": 1e-3, \"hidden\": (64, 128), \"act\": 'relu', \"drop\": None}"
  });
  assert.equal(read({ lr: "__import__('os').system('id')" }), null);
  assert.equal(read({ 'lr; import os': '0.1' }), null);
  assert.equal(read({ lr: "'a' if x else 'b'" }), null);
  assert.equal(read({ lr: '1'.repeat(1500) + 'x' }), null); // and quickly
  // Found by a review: a triple quote read as an empty string and a quote, hiding a call
  // behind a comment; and spaces before a stray character took exponential time.
  const hidden = `'''x'1''' + str(__import__("os").system("echo PWNED"))#'`;
  assert.equal(read({ lr: hidden }), null);
  assert.equal(read({ lr: ' '.repeat(60) + 'x' }), null); // and quickly
  assert.ok(read({ lr: `'a\\'b"c'`, depth: '[1, [2, -3e-05]]', one: '(1,)', e: "''" }));
});
