"""Parameter capture from a cell's syntax tree, and what %%track accepts as options."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from nbtrack._model import MAX_PARAM_VALUE_LENGTH, Run
from nbtrack._redact import stored_value
from nbtrack.kernel.params import SessionLiterals, capture_params, is_papermill_parameters
from nbtrack.shell.magics import parse_options, rewrite_track_cell


def test_literal_top_level_assignments_become_params():
    source = (
        "lr = 3e-3\nmomentum = -1\nname: str = 'mlp'\nflag = True\nnothing = None\n"
        "shape = (1, 2)\nlayers = [64, {'act': 'relu'}]\na, b = 1, 'two'\n"
        "computed = lr * 2\nfor i in range(3):\n    inner = 5\n"
        "def f():\n    local = 1\n"
    )
    assert capture_params(source) == {
        "lr": 0.003,
        "momentum": -1,
        "name": "mlp",
        "flag": True,
        "nothing": None,
        "shape": (1, 2),
        "layers": [64, {"act": "relu"}],
        "a": 1,
        "b": "two",
    }


def test_a_name_the_cell_binds_again_is_state_not_a_param():
    source = (
        "lr = 0.1\n"
        "step = 0\nfor batch in range(3):\n    step += 1\n"  # a loop counter
        "i = 0\nfor i in range(3):\n    pass\n"  # a loop target
        "x = 1\nx = 2\n"  # assigned twice, even to literals
        "y = 1\ny = f(y)\n"  # then computed
        "best = 0.0\nif True:\n    best = 1.0\n"  # rebound deeper in the cell
        "seen = None\nwith open('f') as seen:\n    pass\n"
        "n = 5\n(n := 6)\n"
        "os = 'linux'\nimport os\n"
    )
    assert capture_params(source) == {"lr": 0.1}


def test_session_literals_a_cell_reads_are_params_while_unchanged():
    session = SessionLiterals()
    session.observe("lr = 3e-3\nhidden = 64\nunused = 1\nepochs = 5")
    session.observe("epochs = epochs + 1")  # rebound by a later cell: no longer a literal
    namespace = {"lr": 3e-3, "hidden": 64, "unused": 1, "epochs": 6}
    captured = session.params_for("dropout = 0.5\nmodel = make(hidden, lr, epochs)", namespace)
    assert captured.values == {"dropout": 0.5, "hidden": 64, "lr": 3e-3}
    assert captured.from_session == ["hidden", "lr"]
    # Changed behind the syntax tree's back (exec, a function's `global`): not a param.
    captured = session.params_for("train(hidden)", {"hidden": 128})
    assert captured.values == {}
    # The cell's own binding wins over the session's.
    captured = session.params_for("hidden = 32\ntrain(hidden)", {"hidden": 64})
    assert captured.values == {"hidden": 32}
    assert captured.from_session == []


def test_papermill_parameters_are_params_of_every_tracked_cell():
    session = SessionLiterals()
    session.observe("batch_size = 32\nlr = 0.1")  # the notebook's own parameters cell
    session.observe("# Parameters\nlr = 0.5\nrun_tag = 'a'\n")  # injected by papermill
    namespace = {"batch_size": 32, "lr": 0.5, "run_tag": "a"}
    captured = session.params_for("epochs = 2\ntrain(lr)", namespace)
    assert captured.values == {"epochs": 2, "lr": 0.5, "run_tag": "a"}
    assert captured.from_session == ["lr", "run_tag"]


def test_credential_names_are_never_captured():
    source = "api_key = 'k'\nHF_TOKEN = 't'\ndb_password = 'p'\nsecret = 's'\ntokenizer = 'bert'"
    assert capture_params(source) == {"tokenizer": "bert"}


def test_unparsable_source_yields_no_params():
    assert capture_params("lr = = 1") == {}


def test_papermill_cell_is_recognised():
    assert is_papermill_parameters("# Parameters\nlr = 0.1\n")
    assert not is_papermill_parameters("lr = 0.1")


def test_long_param_values_are_cut_with_a_visible_marker():
    text = stored_value("x" * 10_000)
    assert len(text) == MAX_PARAM_VALUE_LENGTH
    assert text.endswith("[truncated by nbtrack]")


def test_param_values_lose_url_passwords_and_tokens():
    assert stored_value("postgresql://bob:pw@db/x") == "postgresql://<redacted>@db/x"
    assert stored_value("ghp_" + "a" * 30) == "<redacted>"


def test_a_param_cannot_change_value_within_a_run():
    run = Run(run_name="r", experiment_name="e", tracking_uri="sqlite:///x.db")
    run.add_params({"lr": "0.1"})
    run.add_params({"lr": "0.1"})
    with pytest.raises(ValueError, match=r"'lr' was already logged as '0\.1'"):
        run.add_params({"lr": "0.2"})


def test_options_parse_with_shell_quoting():
    options = parse_options(
        "-e exp -n 'my run' -t team=vision --tag owner=me -p 'note=two words' --no-plot"
    )
    assert options.experiment == "exp"
    assert options.name == "my run"
    assert options.tags == {"team": "vision", "owner": "me"}
    assert options.params == {"note": "two words"}
    assert options.plot is False
    assert options.capture_params is True


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("--bogus", "--bogus"),
        ("-t novalue", "'novalue'"),
        ("-p =1", "'=1'"),
        ("-p 'a b!=1'", "'a b!'"),
        ("-e 'unterminated", "'unterminated"),
    ],
)
def test_bad_options_raise_usage_error_naming_the_token(line, named):
    with pytest.raises(UsageError) as raised:
        parse_options(line)
    assert named in str(raised.value)


def test_track_line_is_rewritten_and_body_left_alone():
    lines = ["%%track -e x\n", "lr = 1\n", "lr\n"]
    assert rewrite_track_cell(lines) == [
        "get_ipython().run_line_magic('track', '-e x')\n",
        "lr = 1\n",
        "lr\n",
    ]
    # `%%track?` (help) and other magics are IPython's business.
    assert rewrite_track_cell(["%%track?\n"]) == ["%%track?\n"]
    assert rewrite_track_cell(["%%time\n", "x\n"]) == ["%%time\n", "x\n"]


def test_a_variable_the_cell_passes_as_a_credential_is_never_a_param():
    # `tok` has an ordinary name, but the cell uses it as a token: it is one.
    assert capture_params('tok = "S3CRET"\nlr = 0.1\nlogin(token=tok)') == {"lr": 0.1}
    assert capture_params('t = "S3CRET"\nheaders = {"Authorization": f"Bearer {t}"}') == {}
    # Set in an earlier cell, used as a credential in the tracked one.
    session = SessionLiterals()
    session.observe('tok = "S3CRET"\nlr = 0.1')
    captured = session.params_for("login(token=tok)\ntrain(lr)", {"tok": "S3CRET", "lr": 0.1})
    assert captured.values == {"lr": 0.1}


def test_variables_used_as_credentials_in_any_form_are_never_params():
    # Found by an attacker's review (issue 10's thirteenth session): each reached MLflow as a
    # param.
    cells = [
        'tok = "S3CRET"\nlr = 0.1\nlogin(token=tok.strip())',
        'tok = "S3CRET"\nlr = 0.1\nlogin(token=os.getenv("HF_TOKEN") or tok)',
        "hf = \"S3CRET\"\nlr = 0.1\nget_ipython().run_line_magic('env', 'HF_TOKEN=$hf')",
        'tok = "S3CRET"\nlr = 0.1\nget_ipython().system(\'curl -H "Authorization: Bearer $tok"\')',
        'os.environ["HF_TOKEN"] = hf = "S3CRET"\nlr = 0.1',
        'db = password = "S3CRET"\nlr = 0.1',
    ]
    for cell in cells:
        assert capture_params(cell) == {"lr": 0.1}, cell
    session = SessionLiterals()
    session.observe('tok2 = "S3CRET"\nlr = 0.1')
    captured = session.params_for(
        'headers = {"Authorization": "Bearer " + tok2.strip()}\ntrain(lr)',
        {"tok2": "S3CRET", "lr": 0.1},
    )
    assert captured.values == {"lr": 0.1}


def test_names_a_cell_formats_into_a_key_or_token_name_stay_params():
    # Found by a review (issue 10's thirteenth session): `.format` and `join` under a name
    # with a key or token part made every name they read a credential.
    assert capture_params('epochs = 10\nlr = 0.01\nckpt_key = "run-{}-{}".format(epochs, lr)') == {
        "epochs": 10,
        "lr": 0.01,
    }
