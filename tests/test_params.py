"""params.yaml read into typed sections: a misspelt key, a missing one or a value of the wrong
kind is refused at the start of every stage and command, naming the key; the values stay the
file's own."""

import copy

import pytest
import yaml
from workspaces import make_workspace, run_stage

from pipeline.params import Params, ParamsError, load_params
from pipeline.paths import REPO_ROOT, Workspace
from pipeline.verdicts import read_json
from service.errors import Refusal

PARAMS = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def refusal_of(change) -> str:
    """The refusal of params.yaml's own contents after `change(data)`."""
    data = copy.deepcopy(PARAMS)
    change(data)
    with pytest.raises(ParamsError) as refused:
        Params.read(data)
    assert isinstance(refused.value, Refusal)
    return str(refused.value)


def test_the_projects_own_params_read_into_typed_sections_with_the_files_values():
    params = Params.read(copy.deepcopy(PARAMS))
    assert params.gate.target_plan.memory_mb == PARAMS["gate"]["plans"]["free"]["memory_mb"]
    assert params.convert.quantization == PARAMS["convert"]["quantization"]
    assert params.inputs.custom_objects is None  # `none` in the file
    assert params.bench.cpu_targets.json == PARAMS["bench"]["cpu_targets"]["json"]
    # A whole number where any number may stand stays whole: what is written back is the file's.
    assert type(params.gate.max_latency_p95_ms) is type(PARAMS["gate"]["max_latency_p95_ms"])
    assert params.data == PARAMS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda data: data["gate"].update(max_latency_p95_ms="fast"),
            "params.yaml: gate.max_latency_p95_ms must be a number, got 'fast'",
        ),
        (
            lambda data: data["gate"].update(
                max_latncy_p95_ms=data["gate"].pop("max_latency_p95_ms")
            ),
            "params.yaml: gate has no key 'max_latncy_p95_ms' (did you mean max_latency_p95_ms?)",
        ),
        (
            lambda data: data["gate"].pop("requests"),
            "params.yaml: gate lacks requests (a whole number)",
        ),
        (
            lambda data: data["gate"].update(requests=True),
            "params.yaml: gate.requests must be a whole number, got True",
        ),
        (
            lambda data: data["gate"]["plans"]["free"].update(cpu_share="0.1"),
            "params.yaml: gate.plans.free.cpu_share must be a number, got '0.1'",
        ),
        (
            lambda data: data["gate"].update(plan="gold"),
            "params.yaml: gate.plan='gold' is not in gate.plans; use one of free, starter, "
            "standard, pro",
        ),
        (
            lambda data: data.update(gat=data.pop("gate")),
            "params.yaml has no key 'gat' (did you mean gate?)",
        ),
        (
            lambda data: data["convert"].update(quantization="int4"),
            "params.yaml: convert.quantization must be one of none, float16, dynamic, int8, "
            "got 'int4'",
        ),
        (
            lambda data: data["convert"].update(batch_size=1),
            "params.yaml: convert.batch_size=1 is not usable: it must be at least 2",
        ),
        (
            lambda data: data["parity"].update(min_accuracy="high"),
            "params.yaml: parity.min_accuracy must be a number or null, got 'high'",
        ),
        (
            lambda data: data["parity"]["thresholds"].pop("none"),
            "params.yaml: parity.thresholds has no entry for convert.quantization 'none'",
        ),
        (
            lambda data: data["promote"].update(golden_tolerence=1e-3),
            "params.yaml: promote has no key 'golden_tolerence' (did you mean golden_tolerance?)",
        ),
        (
            lambda data: data["bench"].update(quantizations=["none", "int4"]),
            "params.yaml: bench.quantizations[1] must be one of none, float16, dynamic, int8",
        ),
        (
            lambda data: data["inputs"].update(label_encoder="data/demo/other.txt"),
            "params.yaml: inputs names both labels and label_encoder (its old name)",
        ),
        (
            lambda data: data["gate"].update(service_env={"MAX_BATCH": [4]}),
            "params.yaml: gate.service_env.MAX_BATCH must be text, a number or true or false",
        ),
        # A zero timeout, interval or share would stop a run halfway; out-of-range thresholds
        # would switch their check off. Each is refused at the start.
        (
            lambda data: data["gate"].update(request_timeout_seconds=0),
            "params.yaml: gate.request_timeout_seconds=0 is not usable: it must be more than 0",
        ),
        (
            lambda data: data["gate"].update(health_probe_interval_seconds=0),
            "params.yaml: gate.health_probe_interval_seconds=0 is not usable: it must be more",
        ),
        (
            lambda data: data["gate"].update(plan_fit_utilisation=0),
            "params.yaml: gate.plan_fit_utilisation=0 is not usable: it must be more than 0",
        ),
        (
            lambda data: data["gate"].update(plan_fit_utilisation=1.5),
            "params.yaml: gate.plan_fit_utilisation=1.5 is not usable: it must be at most 1",
        ),
        (
            lambda data: data["convert"].update(timeout_seconds=0),
            "params.yaml: convert.timeout_seconds=0 is not usable: it must be more than 0",
        ),
        (
            lambda data: data["parity"]["label_order"].update(max_p_value=-1),
            "params.yaml: parity.label_order.max_p_value=-1 is not usable: it must be more than 0",
        ),
        (
            lambda data: data["parity"]["thresholds"]["none"].update(min_top1_agreement=-0.9),
            "params.yaml: parity.thresholds.none.min_top1_agreement=-0.9 is not usable: it must "
            "be at least 0",
        ),
        (
            lambda data: data["parity"].update(min_accuracy=1.5),
            "params.yaml: parity.min_accuracy=1.5 is not usable: it must be at most 1",
        ),
        (
            lambda data: data["shared"].update(seed=-1),
            "params.yaml: shared.seed=-1 is not usable: it must be at least 0",
        ),
        (
            lambda data: data["shared"].update(seed=2**32),
            "params.yaml: shared.seed=4294967296 is not usable: it must be at most 4294967295",
        ),
        (
            lambda data: data["parity"]["label_order"].update(max_p_value="1e-3"),
            "params.yaml: parity.label_order.max_p_value must be a number, got '1e-3'; YAML "
            "reads 1e-3 as text; write 1.0e-3",
        ),
        (
            lambda data: data["gate"].update(plans={}),
            "params.yaml: gate.plans names no plan; give at least the one gate.plan names",
        ),
        (
            lambda data: data["gate"].update(max_instances=3),
            "params.yaml: gate has no key 'max_instances' (it belongs under gate.plans.<name>)",
        ),
    ],
)
def test_a_wrong_key_or_value_is_refused_naming_the_key(change, message):
    assert message in refusal_of(change)


def params_file_refusal(tmp_path, text: str) -> str:
    """The refusal of load_params for a workspace whose params.yaml is `text`."""
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError) as refused:
        load_params(Workspace(tmp_path))
    return str(refused.value)


def test_a_key_given_twice_is_refused_naming_it_and_its_lines(tmp_path):
    text = (REPO_ROOT / "params.yaml").read_text()
    lines = text.splitlines(keepends=True)
    first = lines.index("  requests: 400\n") + 1
    lines.insert(first + 1, "  requests: 5\n")
    assert params_file_refusal(tmp_path, "".join(lines)) == (
        f"params.yaml: gate.requests is given twice (lines {first} and {first + 2}); keep one"
    )


def test_a_dotless_exponent_which_yaml_reads_as_text_is_refused_saying_how_to_write_it(tmp_path):
    text = (REPO_ROOT / "params.yaml").read_text()
    assert "    max_p_value: 1.0e-3\n" in text
    refusal = params_file_refusal(
        tmp_path, text.replace("max_p_value: 1.0e-3", "max_p_value: 1e-3")
    )
    assert refusal.endswith("got '1e-3'; YAML reads 1e-3 as text; write 1.0e-3")


def test_label_encoder_the_old_name_of_labels_still_reads_as_labels():
    data = copy.deepcopy(PARAMS)
    data["inputs"]["label_encoder"] = data["inputs"].pop("labels")
    assert Params.read(data).inputs.labels == PARAMS["inputs"]["labels"]


WRONG_GATE_KEYS = {
    "misspelt": (
        {"max_latncy_p95_ms": 250},
        "params.yaml: gate has no key 'max_latncy_p95_ms' (did you mean max_latency_p95_ms?)",
    ),
    "text for a number": (
        {"max_latency_p95_ms": "fast"},
        "params.yaml: gate.max_latency_p95_ms must be a number, got 'fast'",
    ),
}


@pytest.mark.parametrize("case", WRONG_GATE_KEYS, ids=list(WRONG_GATE_KEYS))
def test_the_gate_stage_refuses_a_wrong_gate_key_before_any_service_starts(tmp_path, case):
    gate, message = WRONG_GATE_KEYS[case]
    workspace = make_workspace(tmp_path / "ws", gate=gate)
    workspace.candidate_dir.mkdir(parents=True)
    (workspace.candidate_dir / "model.tflite").write_bytes(b"not a model: never read")
    completed = run_stage("pipeline.stages.gate", workspace, check=False)
    assert completed.returncode != 0
    assert completed.stderr.strip().splitlines()[-1] == f"gate failed: {message}"
    # Nothing started: no cost phase, no health attempt, no measure; the verdict says why.
    assert completed.stdout == ""
    verdict = read_json(workspace.report_path("gate"))
    assert verdict["passed"] is False and verdict["measures"] == {}
    assert verdict["reason"] == message


STAGES_AND_COMMANDS = {
    "demo_model": ["pipeline.stages.demo_model"],
    "convert": ["pipeline.stages.convert"],
    "parity": ["pipeline.stages.parity"],
    "gate": ["pipeline.stages.gate"],
    "promote": ["pipeline.promote", "--dry-run"],
    "rollback": ["pipeline.rollback", "model-v1"],
    "init": ["pipeline.init", "--model", "m.keras", "--labels", "l.txt", "--heldout", "h.npz"],
}


@pytest.mark.parametrize("name", STAGES_AND_COMMANDS, ids=list(STAGES_AND_COMMANDS))
def test_every_stage_and_command_refuses_a_wrong_key_at_its_start(tmp_path, name):
    module, *arguments = STAGES_AND_COMMANDS[name]
    workspace = make_workspace(tmp_path / "ws", shared={"sed": 1})
    workspace.candidate_dir.mkdir(parents=True)
    (workspace.candidate_dir / "model.tflite").write_bytes(b"not a model: never read")
    completed = run_stage(module, workspace, check=False, arguments=arguments)
    assert completed.returncode != 0
    assert "params.yaml: shared has no key 'sed' (did you mean seed?)" in completed.stderr
    assert "Traceback" not in completed.stderr
