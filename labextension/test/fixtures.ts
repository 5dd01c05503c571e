/** Records as a writer following docs/record-schema.md would produce them. */

export function rawRecord(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    schema: 2,
    nbtrack_version: '0.1.0',
    run: {
      id: 'run-a',
      name: 'baseline',
      experiment_id: '1',
      experiment_name: 'mnist',
      status: 'FINISHED',
      start_time: 1763779200000,
      end_time: 1763779260000,
      duration_s: 60.0
    },
    tracking_uri: 'sqlite:///tmp/mlflow.db',
    ui_url: 'http://127.0.0.1:5000/#/experiments/1/runs/run-a',
    notebook: { path: 'train.ipynb', cell_id: 'c1' },
    params: { lr: '0.003', epochs: '5' },
    metrics: {
      'train/loss': {
        last: 0.12,
        last_step: 3,
        min: 0.12,
        max: 2.3,
        goal: 'min',
        best: 0.12,
        best_step: 3,
        count: 4,
        nonfinite: 0,
        curve: { steps: [0, 1, 2, 3], values: [2.3, 1.1, 0.5, 0.12] }
      }
    },
    panels: [['train/loss']],
    error: null,
    sync: { state: 'synced', pending_points: 0 }
  };
  // A test that gives metrics but no panels gets one panel per metric: the
  // grouping is the writer's business, and tests of it give their panels.
  const metrics = overrides['metrics'];
  if (!('panels' in overrides) && typeof metrics === 'object' && metrics !== null) {
    base['panels'] = Object.keys(metrics).map(name => [name]);
  }
  return { ...base, ...overrides };
}
