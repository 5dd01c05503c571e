import assert from 'node:assert/strict';
import { test } from 'node:test';

import { alignSeries, metricFamily, overlayCharts, runCharts } from '../src/charts';
import { IRunRecord, parseRecord } from '../src/record';
import { rawRecord } from './fixtures';

function curve(values: number[]): Record<string, unknown> {
  return { last: values[values.length - 1], curve: { steps: values.map((_, i) => i), values } };
}

function withMetrics(metrics: Record<string, unknown>, name = 'r'): IRunRecord {
  const result = parseRecord(rawRecord({ metrics, run: { id: name, name } }));
  assert.ok(result.ok);
  return result.record;
}

test('train and validation variants of a metric share a family', () => {
  assert.equal(metricFamily('train/loss'), 'loss');
  assert.equal(metricFamily('val/loss'), 'loss');
  assert.equal(metricFamily('train_loss'), 'loss');
  assert.equal(metricFamily('val_loss'), 'loss');
  assert.equal(metricFamily('loss'), 'loss');
  assert.equal(metricFamily('acc_val'), 'acc');
  assert.equal(metricFamily('lr'), 'lr');
  assert.equal(metricFamily('val'), 'val');
});

test('train/loss and val/loss go on one chart, accuracy on another', () => {
  const charts = runCharts(
    withMetrics({
      'train/loss': curve([2, 1, 0.5]),
      'val/loss': curve([2.2, 1.3, 0.7]),
      'val/acc': curve([0.5, 0.7, 0.9])
    })
  );
  assert.deepEqual(
    charts.map(c => [c.title, c.series.map(s => s.label)]),
    [
      ['loss', ['train/loss', 'val/loss']],
      ['acc', ['val/acc']]
    ]
  );
});

test('curves of one family with very different scales are split', () => {
  const charts = runCharts(
    withMetrics({
      'train/loss': curve([2, 1, 0.5]),
      'val/loss': curve([1.9, 1.2, 0.6]),
      'aux/loss': curve([5000, 3000, 2000])
    })
  );
  assert.equal(charts.length, 2);
  assert.deepEqual(charts[0].series.map(s => s.label), ['train/loss', 'val/loss']);
  assert.deepEqual(charts[1].series.map(s => s.label), ['aux/loss']);
});

test('single points get no chart and log scale needs positive values', () => {
  const charts = runCharts(
    withMetrics({ test_acc: curve([0.9]), delta: curve([1, -1, 0.5]), loss: curve([1, 0.5]) })
  );
  assert.deepEqual(charts.map(c => [c.title, c.logAllowed]), [
    ['loss', true],
    ['delta', false]
  ]);
});

test('comparing runs overlays the same metric of each run', () => {
  const a = withMetrics({ loss: curve([1, 0.5]) }, 'a');
  const b = withMetrics({ loss: curve([1.2, 0.4, 0.3]) }, 'b');
  const charts = overlayCharts([
    { label: 'a', record: a },
    { label: 'b', record: b }
  ]);
  assert.equal(charts.length, 1);
  assert.deepEqual(charts[0].series.map(s => s.label), ['a · loss', 'b · loss']);
});

test('aligned series share the union of steps with gaps as null', () => {
  const { xs, ys } = alignSeries([
    { label: 'a', steps: [0, 2], values: [1, NaN] },
    { label: 'b', steps: [1, 2], values: [5, 6] }
  ]);
  assert.deepEqual(xs, [0, 1, 2]);
  assert.deepEqual(ys, [
    [1, null, null],
    [null, 5, 6]
  ]);
});

test('losses come first, then metrics to minimise, then to maximise, then the rest', () => {
  const goal = (g: string | null, values: number[]) => ({ ...curve(values), goal: g, best: 1 });
  const charts = runCharts(
    withMetrics({
      grad_norm: curve([300, 200]),
      val_acc: goal('max', [0.5, 0.9]),
      error_rate: goal('min', [0.5, 0.1]),
      'train/loss': goal('min', [2, 1])
    })
  );
  assert.deepEqual(
    charts.map(c => c.title),
    ['loss', 'error_rate', 'acc', 'grad_norm']
  );
});
