import assert from 'node:assert/strict';
import { test } from 'node:test';

import { chooseUiAddress, compareRunsUrl, runUrl, uiBase } from '../src/links';

test('the UI base drops the route of a run page', () => {
  assert.equal(uiBase('http://127.0.0.1:5000/#/experiments/1/runs/abc'), 'http://127.0.0.1:5000/');
  assert.equal(uiBase('https://hub.example/user/me/mlflow/?x=1#/'), 'https://hub.example/user/me/mlflow/');
  assert.equal(uiBase('javascript:alert(1)//#/x'), null);
});

test("MLflow's compare view gets JSON lists of run and experiment ids", () => {
  const url = compareRunsUrl('http://127.0.0.1:5000/#/experiments/1/runs/a', [
    { id: 'a', experimentId: '1' },
    { id: 'b', experimentId: '1' },
    { id: 'c', experimentId: '2' }
  ]);
  assert.ok(url);
  const [base, route] = url.split('#');
  assert.equal(base, 'http://127.0.0.1:5000/');
  const query = new URLSearchParams(route.replace('/compare-runs?', ''));
  assert.ok(route.startsWith('/compare-runs?'));
  assert.deepEqual(JSON.parse(query.get('runs') ?? ''), ['a', 'b', 'c']);
  assert.deepEqual(JSON.parse(query.get('experiments') ?? ''), ['1', '2']);
  // MLflow 3 opens its model-training view only when the address asks for it.
  assert.equal(query.get('workflowType'), 'machine_learning');
});

test('no compare link without two run ids or a safe base', () => {
  const runs = [
    { id: 'a', experimentId: '1' },
    { id: 'b', experimentId: '1' }
  ];
  assert.equal(compareRunsUrl(null, runs), null);
  assert.equal(compareRunsUrl('javascript:x', runs), null);
  assert.equal(compareRunsUrl('http://h/', [runs[0], { id: null, experimentId: '1' }]), null);
});

test("a run's page is under the experiment", () => {
  assert.equal(
    runUrl('http://h:5000/', { id: 'r1', experimentId: '3' }),
    'http://h:5000/#/experiments/3/runs/r1?workflowType=machine_learning'
  );
  assert.equal(runUrl('http://h:5000/', { id: 'r1', experimentId: null }), null);
});

test('the proxied UI address, behind Jupyter\'s login, is preferred wherever it exists', () => {
  const direct = 'http://127.0.0.1:5123/';
  assert.equal(
    chooseUiAddress(direct, '/mlflow/', 'http://localhost:8888/lab'),
    'http://localhost:8888/mlflow/'
  );
  assert.equal(
    chooseUiAddress(direct, '/user/me/mlflow/', 'https://hub.example/user/me/lab'),
    'https://hub.example/user/me/mlflow/'
  );
  assert.equal(chooseUiAddress(direct, null, 'https://hub.example/lab'), direct);
  assert.equal(chooseUiAddress('javascript:x', 'javascript:y', 'http://localhost/'), null);
});
