"""ZeroGPU: with a fake ``spaces`` package that records calls, every model run of the served app happens inside
``spaces.GPU``, asks for the seconds of its cost estimate, and a refused request never asks for a GPU."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from attribution.cost import estimate_attribution_cost
from space.gradio_app.config import SpaceConfig
from space.gradio_app.examples import IOI_MODEL, ioi_prompts
from space.gradio_app.zerogpu import MODEL_GROUPS
from tests.support.app_server import free_port
from tests.support.fake_spaces import FakeSpaces
from tests.support.paths import REPO

PROMPT = ioi_prompts(1)[0]
SECONDS_PER_PASS = 0.7
CONFIG = SpaceConfig(
    models=(IOI_MODEL,),
    default_model=IOI_MODEL,
    max_new_tokens=5,
    max_model_passes=40,
    method_params={"integrated_gradients": {"n_steps": 16}},
    time_budget_s=30,
    gpu_seconds_per_pass=SECONDS_PER_PASS,
    concurrency_limit=1,
)


@pytest.fixture(scope="module")
def zero_gpu():
    """The app built and served as on ZeroGPU (``SPACES_ZERO_GPU``, the fake ``spaces``); the fake, the app, its URL."""
    from space.gradio_app import build_app, launch

    fake = FakeSpaces()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPACES_ZERO_GPU", "true")
        patch.setitem(sys.modules, "spaces", fake.module())
        demo, ctx = build_app(CONFIG, hub_reachable=False)
    seen: list[bool] = []  # for every module call of the model: inside a GPU call?
    for module in ctx.load(IOI_MODEL).model.modules():
        module.register_forward_pre_hook(lambda *_: seen.append(fake.inside))
    port = free_port()
    launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield fake, demo, ctx, Client(f"http://127.0.0.1:{port}/", verbose=False), seen
    finally:
        demo.close()


def _attribute(client: Client, method: str):
    return client.predict(IOI_MODEL, PROMPT, "", method, ["probability"], "", api_name="/attribute")


@pytest.mark.server
def test_every_model_event_and_only_those_run_through_one_gpu_function(zero_gpu):
    fake, demo, *_ = zero_gpu
    assert len(fake.decorated) == 1  # one worker process for every event
    wrapped = {fn.concurrency_id for fn in demo.fns.values() if getattr(fn.fn, "zero_gpu", False)}
    unwrapped = {fn.concurrency_id for fn in demo.fns.values() if fn.fn is not None and not hasattr(fn.fn, "zero_gpu")}
    assert wrapped == set(MODEL_GROUPS)
    assert not wrapped & unwrapped


@pytest.mark.server
def test_an_attribution_runs_on_the_gpu_for_the_seconds_of_its_estimate(zero_gpu):
    fake, _, ctx, client, seen = zero_gpu
    fake.calls.clear()
    seen.clear()
    _attribute(client, "saliency")
    estimate = estimate_attribution_cost(
        ctx.load(IOI_MODEL), PROMPT, method="saliency", step_scores=["probability"], max_new_tokens=5
    )
    assert estimate.passes == 5 + 5 + 5  # 5 generated tokens: a gradient, a prediction and a generation pass each
    assert [call.seconds for call in fake.calls] == [math.ceil(estimate.passes * SECONDS_PER_PASS)]
    assert seen and all(seen)  # the model ran, and only inside the GPU call


@pytest.mark.server
def test_a_request_over_the_cap_is_refused_before_asking_for_a_gpu(zero_gpu):
    fake, _, _, client, seen = zero_gpu
    fake.calls.clear()
    seen.clear()
    with pytest.raises(AppError, match="would need about 90 model passes; this deployment allows at most 40"):
        _attribute(client, "integrated_gradients")  # 5 tokens x (16 steps + 1 prediction + 1 generation)
    assert fake.calls == [] and seen == []
    _attribute(client, "saliency")  # the app still serves
    assert len(fake.calls) == 1


@pytest.mark.server
def test_a_graph_asks_for_its_time_budget_and_a_rewalk_needs_no_gpu(zero_gpu):
    fake, _, _, client, seen = zero_gpu
    fake.calls.clear()
    seen.clear()
    _, graph_json = client.predict(IOI_MODEL, PROMPT, "", 0.04, False, "-1", api_name="/graph")
    assert [call.seconds for call in fake.calls] == [CONFIG.time_budget_s]  # the graph estimates nothing yet
    assert seen and all(seen)
    seen.clear()
    client.predict(IOI_MODEL, PROMPT, "", 0.2, False, "-1", graph_json, "", "", api_name="/graph_threshold")
    assert len(fake.calls) == 1 and seen == []  # re-walked from the shown graph: answered by the dry run


def test_without_zero_gpu_nothing_is_wrapped(monkeypatch):
    from space.gradio_app import build_app

    fake = FakeSpaces()
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setitem(sys.modules, "spaces", fake.module())  # installed, as on any Space, but not ZeroGPU
    demo, _ = build_app(CONFIG, hub_reachable=False)
    assert fake.decorated == []
    assert not any(hasattr(fn.fn, "zero_gpu") for fn in demo.fns.values())


@pytest.mark.slow  # a fresh process imports torch, transformers, Inseq and Gradio: ~40 s on the shared machine
def test_building_the_zero_gpu_app_never_initialises_cuda(tmp_path):
    """In a fresh process (imports included), with torch's CUDA initialisation made to raise."""
    script = textwrap.dedent(
        f"""
        import sys, torch
        sys.path.insert(0, {str(REPO)!r})
        def refuse(*args, **kwargs):
            raise SystemExit("CUDA initialised")
        torch.cuda._lazy_init = refuse
        torch._C._cuda_init = refuse
        from tests.support.fake_spaces import FakeSpaces
        fake = FakeSpaces()
        sys.modules["spaces"] = fake.module()
        from space.gradio_app import build_app
        from space.gradio_app.config import SpaceConfig
        config = SpaceConfig(models=("tiny-ioi-gpt2",), default_model="tiny-ioi-gpt2", preload_models=True)
        demo, ctx = build_app(config, hub_reachable=False)
        assert len(ctx.cache) == len(ctx.offer.models) == 2 and fake.decorated, (len(ctx.cache), fake.decorated)
        print("ok")
        """
    )
    env = {"SPACES_ZERO_GPU": "true", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
