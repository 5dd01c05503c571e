import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MIME_TYPE, parseRecord } from '../src/record';
import { collectRuns, differingParams, headlineMetrics, keyParams } from '../src/runs';
import { rawRecord } from './fixtures';

function run(id: string | null, start: number | null, params: Record<string, string> = {}) {
  return rawRecord({ run: { id, name: `run ${id}`, start_time: start }, params });
}

test('runs are listed newest first with the cell they are in', () => {
  const runs = collectRuns([
    { index: 0, id: 'a', bundles: [{ 'text/plain': 'hi' }] },
    { index: 1, id: 'b', bundles: [{ [MIME_TYPE]: run('old', 1000) }] },
    { index: 3, id: 'c', bundles: [{ [MIME_TYPE]: run('new', 2000), 'text/html': '<b>x</b>' }] },
    { index: 4, id: 'd', bundles: [{ [MIME_TYPE]: { schema: 99 } }] }
  ]);
  assert.deepEqual(
    runs.map(r => [r.record.run.id, r.cellIndex, r.cellId]),
    [
      ['new', 3, 'c'],
      ['old', 1, 'b']
    ]
  );
});

test('a run shown twice is listed once, where it was last shown', () => {
  const runs = collectRuns([
    { index: 0, id: 'a', bundles: [{ [MIME_TYPE]: run('r', 1000) }] },
    { index: 5, id: 'b', bundles: [{ [MIME_TYPE]: run('r', 1000) }] }
  ]);
  assert.equal(runs.length, 1);
  assert.equal(runs[0].cellIndex, 5);
});

test('offline runs without an id or start time are kept, last', () => {
  const runs = collectRuns([
    { index: 0, id: 'a', bundles: [{ [MIME_TYPE]: run(null, null) }, { [MIME_TYPE]: run(null, null) }] },
    { index: 1, id: 'b', bundles: [{ [MIME_TYPE]: run('x', 5) }] }
  ]);
  assert.deepEqual(
    runs.map(r => r.key),
    ['x', 'cell:a:1', 'cell:a:0']
  );
});

test('only params that differ are compared, missing ones count as different', () => {
  const records = [
    run('a', 1, { lr: '0.1', epochs: '5', seed: '1' }),
    run('b', 2, { lr: '0.01', epochs: '5' })
  ].map(r => {
    const p = parseRecord(r);
    assert.ok(p.ok);
    return p.record;
  });
  assert.deepEqual(differingParams(records), [
    { name: 'lr', values: ['0.1', '0.01'] },
    { name: 'seed', values: ['1', null] }
  ]);
});

test('summaries show varying params first and best values of goal metrics', () => {
  const parsed = parseRecord(
    rawRecord({
      params: { a: '1', b: '2', lr: '0.1', d: '4' },
      metrics: {
        lr: { last: 0.1 },
        loss: { last: 0.5, goal: 'min', best: 0.4, best_step: 3 }
      }
    })
  );
  assert.ok(parsed.ok);
  assert.deepEqual(keyParams(parsed.record, new Set(['lr'])), [
    ['lr', '0.1'],
    ['a', '1'],
    ['b', '2']
  ]);
  assert.deepEqual(headlineMetrics(parsed.record), [
    { name: 'loss', value: 0.4, kind: 'best' },
    { name: 'lr', value: 0.1, kind: 'last' }
  ]);
});
