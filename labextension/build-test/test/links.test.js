"use strict";
var __importDefault = (this && this.__importDefault) || function (mod) {
    return (mod && mod.__esModule) ? mod : { "default": mod };
};
Object.defineProperty(exports, "__esModule", { value: true });
const strict_1 = __importDefault(require("node:assert/strict"));
const node_test_1 = require("node:test");
const links_1 = require("../src/links");
(0, node_test_1.test)('the UI base drops the route of a run page', () => {
    strict_1.default.equal((0, links_1.uiBase)('http://127.0.0.1:5000/#/experiments/1/runs/abc'), 'http://127.0.0.1:5000/');
    strict_1.default.equal((0, links_1.uiBase)('https://hub.example/user/me/mlflow/?x=1#/'), 'https://hub.example/user/me/mlflow/');
    strict_1.default.equal((0, links_1.uiBase)('javascript:alert(1)//#/x'), null);
});
(0, node_test_1.test)("MLflow's compare view gets JSON lists of run and experiment ids", () => {
    const url = (0, links_1.compareRunsUrl)('http://127.0.0.1:5000/#/experiments/1/runs/a', [
        { id: 'a', experimentId: '1' },
        { id: 'b', experimentId: '1' },
        { id: 'c', experimentId: '2' }
    ]);
    strict_1.default.ok(url);
    const [base, route] = url.split('#');
    strict_1.default.equal(base, 'http://127.0.0.1:5000/');
    const query = new URLSearchParams(route.replace('/compare-runs?', ''));
    strict_1.default.ok(route.startsWith('/compare-runs?'));
    strict_1.default.deepEqual(JSON.parse(query.get('runs') ?? ''), ['a', 'b', 'c']);
    strict_1.default.deepEqual(JSON.parse(query.get('experiments') ?? ''), ['1', '2']);
});
(0, node_test_1.test)('no compare link without two run ids or a safe base', () => {
    const runs = [
        { id: 'a', experimentId: '1' },
        { id: 'b', experimentId: '1' }
    ];
    strict_1.default.equal((0, links_1.compareRunsUrl)(null, runs), null);
    strict_1.default.equal((0, links_1.compareRunsUrl)('javascript:x', runs), null);
    strict_1.default.equal((0, links_1.compareRunsUrl)('http://h/', [runs[0], { id: null, experimentId: '1' }]), null);
});
(0, node_test_1.test)("a run's page is under the experiment", () => {
    strict_1.default.equal((0, links_1.runUrl)('http://h:5000/', { id: 'r1', experimentId: '3' }), 'http://h:5000/#/experiments/3/runs/r1');
    strict_1.default.equal((0, links_1.runUrl)('http://h:5000/', { id: 'r1', experimentId: null }), null);
});
(0, node_test_1.test)('the proxied UI address is preferred away from localhost', () => {
    const direct = 'http://127.0.0.1:5123/';
    strict_1.default.equal((0, links_1.chooseUiAddress)(direct, '/user/me/mlflow/', 'http://localhost:8888/lab'), direct);
    strict_1.default.equal((0, links_1.chooseUiAddress)(direct, '/user/me/mlflow/', 'https://hub.example/user/me/lab'), 'https://hub.example/user/me/mlflow/');
    strict_1.default.equal((0, links_1.chooseUiAddress)(direct, null, 'https://hub.example/lab'), direct);
    strict_1.default.equal((0, links_1.chooseUiAddress)('javascript:x', 'javascript:y', 'http://localhost/'), null);
});
