"""The Open Inference Protocol (v2 REST): Triton's own client against render.yaml's gunicorn,
its answers equal /api/predict's, and its errors the protocol's error object."""

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

MAX_DIFFERENCE = 1e-5


@pytest.fixture(scope="module")
def client(demo_service):
    """Triton's HTTP client on the running service."""
    client = triton.InferenceServerClient(url=demo_service.url.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def model(demo_service) -> dict:
    """The model's name and version as /api/metadata/ states them."""
    metadata = requests.get(f"{demo_service.url}/api/metadata/", timeout=5).json()
    return {"name": metadata["model_name"], "version": metadata["model_version"]}


def api_predict_outputs(service, samples: np.ndarray, labels: list[str]) -> np.ndarray:
    """/api/predict/'s values for every label, in the model's output order."""
    answer = requests.post(
        f"{service.url}/api/predict/?top_k={len(labels)}",
        data=samples.tobytes(),
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    ).json()
    outputs = np.zeros((len(samples), len(labels)), dtype=np.float32)
    for row, prediction in zip(outputs, answer["predictions"], strict=True):
        for entry in prediction["top_k"]:
            row[labels.index(entry["label"])] = entry["probability"]
    return outputs


@pytest.mark.slow
def test_triton_client_sees_server_and_model_live_ready_and_described(client, model, samples):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(model["name"])
    assert client.is_model_ready(model["name"], model_version=model["version"])
    assert not client.is_model_ready("no-such-model")
    metadata = client.get_model_metadata(model["name"])
    assert metadata["name"] == model["name"] and metadata["versions"] == [model["version"]]
    assert metadata["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, *samples.shape[1:]]}
    ]
    assert metadata["outputs"] == [{"name": "probability", "datatype": "FP32", "shape": [-1, 10]}]
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


@pytest.mark.slow
@pytest.mark.parametrize("binary", [False, True], ids=["json tensors", "binary tensors"])
def test_triton_infer_equals_api_predict(client, demo_service, model, samples, binary):
    batch = samples[:6]
    labels = requests.get(f"{demo_service.url}/api/metadata/", timeout=5).json()["labels"]
    tensor = triton.InferInput("input", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    wanted = [triton.InferRequestedOutput("probability", binary_data=binary)]
    result = client.infer(model["name"], [tensor], outputs=wanted, request_id="r-7")
    outputs = result.as_numpy("probability")
    assert outputs.shape == (len(batch), len(labels)) and outputs.dtype == np.float32
    assert result.get_response()["id"] == "r-7"
    expected = api_predict_outputs(demo_service, batch, labels)
    assert np.abs(outputs - expected).max() < MAX_DIFFERENCE
    # No outputs named: tritonclient asks for all of them in binary, by version too.
    versioned = client.infer(model["name"], [tensor], model_version=model["version"])
    assert np.abs(versioned.as_numpy("probability") - expected).max() < MAX_DIFFERENCE


@pytest.mark.slow
def test_a_wrongly_shaped_request_is_refused_with_the_protocols_error(client, model, samples):
    tensor = triton.InferInput("input", [1, *samples.shape[2:]], "FP32")
    tensor.set_data_from_numpy(samples[0, :1])
    with pytest.raises(InferenceServerException) as refusal:
        client.infer(model["name"], [tensor])
    assert refusal.value.status() == "400"
    assert "shape [1, 243] is not the model's" in refusal.value.message()


@pytest.mark.slow
def test_v2_errors_over_http_are_the_protocols_error_object(demo_service, model):
    url = f"{demo_service.url}/v2/models"
    response = requests.post(f"{url}/nowhere/infer", json={"inputs": []}, timeout=5)
    assert response.status_code == 404 and set(response.json()) == {"error"}
    assert "unknown model 'nowhere'" in response.json()["error"]
    response = requests.post(
        f"{url}/{model['name']}/infer",
        data=b'{"inputs": []}',
        headers={"Inference-Header-Content-Length": "12x"},
        timeout=5,
    )
    assert response.status_code == 400 and "is not a number" in response.json()["error"]
    assert requests.get(f"{url}/{model['name']}/infer", timeout=5).status_code == 405
