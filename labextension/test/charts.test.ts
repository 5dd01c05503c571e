import assert from 'node:assert/strict';
import { test } from 'node:test';

import { alignSeries, mergePanels, overlayCharts, runCharts } from '../src/charts';
import { IRunRecord, parseRecord } from '../src/record';
import { rawRecord } from './fixtures';

function curve(values: number[]): Record<string, unknown> {
  return { last: values[values.length - 1], curve: { steps: values.map((_, i) => i), values } };
}

function withMetrics(
  metrics: Record<string, unknown>,
  panels: string[][],
  name = 'r'
): IRunRecord {
  const result = parseRecord(rawRecord({ metrics, panels, run: { id: name, name } }));
  assert.ok(result.ok);
  assert.deepEqual(result.warnings, []);
  return result.record;
}

function layout(charts: ReturnType<typeof runCharts>): Array<[string, string[]]> {
  return charts.map(c => [c.title, c.series.map(s => s.label)]);
}

test('charts follow the record panels, whatever the metric names say', () => {
  const metrics = {
    valLoss: curve([2.2, 1.3, 0.7]),
    trainLoss: curve([2, 1, 0.5]),
    lr: curve([0.003, 0.003, 0.001])
  };
  // As nbtrack writes it (tests/test_record.py checks the SVG draws the same).
  assert.deepEqual(layout(runCharts(withMetrics(metrics, [['valLoss', 'trainLoss'], ['lr']]))), [
    ['valLoss, trainLoss', ['valLoss', 'trainLoss']],
    ['lr', ['lr']]
  ]);
  // Any other grouping a record carries is drawn as it is: nothing is regrouped by name.
  assert.deepEqual(layout(runCharts(withMetrics(metrics, [['lr', 'trainLoss'], ['valLoss']]))), [
    ['lr, trainLoss', ['lr', 'trainLoss']],
    ['valLoss', ['valLoss']]
  ]);
});

test('train/loss and val/loss go on one chart, accuracy on another', () => {
  const charts = runCharts(
    withMetrics(
      {
        'train/loss': curve([2, 1, 0.5]),
        'val/loss': curve([2.2, 1.3, 0.7]),
        'val/acc': curve([0.5, 0.7, 0.9])
      },
      [['train/loss', 'val/loss'], ['val/acc']]
    )
  );
  assert.deepEqual(layout(charts), [
    ['train/loss, val/loss', ['train/loss', 'val/loss']],
    ['val/acc', ['val/acc']]
  ]);
});

test('charts come in the order of the record panels, not of its metrics', () => {
  // Saved notebooks sort JSON keys, so the metrics object is alphabetical by then.
  const goal = (g: string | null, values: number[]) => ({ ...curve(values), goal: g, best: 1 });
  const charts = runCharts(
    withMetrics(
      {
        error_rate: goal('min', [0.5, 0.1]),
        grad_norm: curve([300, 200]),
        'train/loss': goal('min', [2, 1]),
        val_acc: goal('max', [0.5, 0.9])
      },
      [['train/loss'], ['error_rate'], ['val_acc'], ['grad_norm']]
    )
  );
  assert.deepEqual(
    charts.map(c => c.title),
    ['train/loss', 'error_rate', 'val_acc', 'grad_norm']
  );
  assert.equal(charts[0].series[0].goal, 'min');
});

test('a record of schema 1 gets one chart per metric', () => {
  const raw = rawRecord({
    schema: 1,
    metrics: { 'train/loss': curve([2, 1]), 'val/loss': curve([2.2, 1.3]) }
  });
  delete raw['panels'];
  const result = parseRecord(raw);
  assert.ok(result.ok);
  assert.deepEqual(result.warnings, []);
  assert.deepEqual(layout(runCharts(result.record)), [
    ['train/loss', ['train/loss']],
    ['val/loss', ['val/loss']]
  ]);
});

test('single points get no chart and log scale needs positive values', () => {
  const charts = runCharts(
    withMetrics(
      { test_acc: curve([0.9]), delta: curve([1, -1, 0.5]), loss: curve([1, 0.5]) },
      [['test_acc'], ['loss'], ['delta']]
    )
  );
  assert.deepEqual(
    charts.map(c => [c.title, c.logAllowed]),
    [
      ['loss', true],
      ['delta', false]
    ]
  );
});

test('comparing runs overlays the same metric of each run', () => {
  const a = withMetrics({ loss: curve([1, 0.5]) }, [['loss']], 'a');
  const b = withMetrics({ loss: curve([1.2, 0.4, 0.3]) }, [['loss']], 'b');
  const charts = overlayCharts([
    { label: 'a', record: a },
    { label: 'b', record: b }
  ]);
  assert.equal(charts.length, 1);
  assert.deepEqual(charts[0].series.map(s => s.label), ['a · loss', 'b · loss']);
});

test('comparing runs keeps each metric on its panel and merges panels that share one', () => {
  const a = withMetrics(
    { loss: curve([1, 0.5]), val_loss: curve([1.1, 0.6]), lr: curve([0.1, 0.1]) },
    [['loss', 'val_loss'], ['lr']],
    'a'
  );
  // b put its losses apart (their scales differed) and logged a metric a did not.
  const b = withMetrics(
    { loss: curve([1.2, 0.4]), val_loss: curve([90, 80]), aux: curve([5, 4]) },
    [['val_loss'], ['loss', 'aux']],
    'b'
  );
  assert.deepEqual(mergePanels([a, b]), [['loss', 'val_loss', 'aux'], ['lr']]);
  // A run whose panel holds metrics of two merged panels joins them into one.
  const c = withMetrics({ lr: curve([0.1, 0.05]), aux: curve([3, 2]) }, [['lr', 'aux']], 'c');
  assert.deepEqual(mergePanels([a, b, c]), [['loss', 'val_loss', 'aux', 'lr']]);
  const charts = overlayCharts([
    { label: 'a', record: a },
    { label: 'b', record: b }
  ]);
  assert.deepEqual(layout(charts), [
    [
      'loss, val_loss, aux',
      ['a · loss', 'a · val_loss', 'b · loss', 'b · val_loss', 'b · aux']
    ],
    ['lr', ['a · lr']]
  ]);
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
