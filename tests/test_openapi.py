"""GET /openapi.json: a valid OpenAPI 3 document of every route, stating the enforced contract."""

import io
import json

import jsonschema
import pytest
import requests
from openapi_spec_validator import validate

from service.app import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def document(demo_service) -> dict:
    """The document as render.yaml's gunicorn serves it."""
    response = requests.get(f"{demo_service.url}/openapi.json", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def test_the_document_is_valid_openapi_naming_our_routes_and_v2(document):
    validate(document)  # raises on anything OpenAPI 3.1 does not allow
    assert document["openapi"].startswith("3.")
    for path in (
        "/api/predict/",
        "/api/health/",
        "/api/metadata/",
        "/openapi.json",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model_name}",
        "/v2/models/{model_name}/ready",
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    ):
        assert path in document["paths"], path


def path_of(template: str, name: str, version: str) -> str:
    return template.replace("{model_name}", name).replace("{model_version}", version)


def test_every_route_the_app_answers_is_documented_and_the_other_way_round(candidate_dir):
    app = create_app(candidate_dir)
    document = json.loads(app.openapi_payload)
    name, version = app.protocol.model_name, app.protocol.model_version
    documented = {
        (path_of(template, name, version), method.upper())
        for template, operations in document["paths"].items()
        for method in operations
        if method != "parameters"
    }
    # The app's fixed routes (the /api/ paths without their final slash are the same routes).
    served = {
        (path, method)
        for path, methods in app.routes.items()
        if path.endswith("/") or not path.startswith("/api/")
        for method in methods
    }
    assert served <= documented, served - documented
    for path, method in documented - served:  # the templated model routes
        assert method in app.protocol.model_routes(path), (path, method)


def test_the_document_states_the_limits_and_shape_the_service_enforces(candidate_dir):
    app = create_app(candidate_dir, max_batch=5)
    document = json.loads(app.openapi_payload)
    schemas = document["components"]["schemas"]
    contract = app.predictor.contract
    assert "At most 5 samples (MAX_BATCH)" in document["info"]["description"]
    batch = schemas["PredictRequest"]["properties"]["instances"]["oneOf"][1]
    assert batch["maxItems"] == 5
    shape = schemas["V2InferenceRequest"]["properties"]["inputs"]["items"]["properties"]["shape"]
    assert shape["prefixItems"][0]["maximum"] == 5
    assert [dim["const"] for dim in shape["prefixItems"][1:]] == list(contract.sample_shape)
    predict_body = document["paths"]["/api/predict/"]["post"]["requestBody"]
    assert str(app.body_limits.float32_bytes) in predict_body["description"]
    assert set(predict_body["content"]) == {"application/json", "application/octet-stream"}


def test_the_schemas_accept_what_the_service_accepts_and_refuse_what_it_refuses(
    candidate_dir, heldout_samples
):
    app = create_app(candidate_dir, max_batch=2)
    document = json.loads(app.openapi_payload)

    def validator(name: str) -> jsonschema.Draft202012Validator:
        schema = {**document["components"]["schemas"][name], "components": document["components"]}
        return jsonschema.Draft202012Validator(schema)

    samples = heldout_samples[:3]
    good = {"inputs": [{"name": "input", "shape": [2, 65, 243], "datatype": "FP32"}]}
    good["inputs"][0]["data"] = samples[:2].ravel().tolist()
    too_many = {"inputs": [{**good["inputs"][0], "shape": [3, 65, 243]}]}
    for body, valid in ((good, True), (too_many, False)):
        assert validator("V2InferenceRequest").is_valid(body) is valid
        status = answer(app, "/v2/models/model/infer", json.dumps(body).encode())
        assert (status == 200) is valid
    for instances, valid in ((samples[:2].tolist(), True), (samples.tolist(), False)):
        assert validator("PredictRequest").is_valid({"instances": instances}) is valid
        body = json.dumps({"instances": instances}).encode()
        assert (answer(app, "/api/predict/", body) == 200) is valid


def answer(app, path: str, body: bytes) -> int:
    statuses = []
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return int(statuses[0].split()[0])


def test_without_a_model_the_document_is_still_valid(tmp_path):
    app = create_app(tmp_path / "missing")
    document = json.loads(app.openapi_payload)
    validate(document)
    assert "No model is ready" in document["info"]["description"]
