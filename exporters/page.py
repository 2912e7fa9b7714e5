"""HTML pages around a Bokeh layout: provenance header and metadata, the three output modes.

Everything here that comes from a result or a user (model ids, parameters, tokens, titles) is shown
with its invisible and direction-changing characters marked (:func:`shown`) and escaped: ``html.escape`` for
markup and attributes, and ``\\u003c``-style escapes for the JSON that
sits inside ``<script type="application/json">``, so ``</script>`` in a string cannot end it early.
"""

from __future__ import annotations

import html
import json
from importlib import metadata
from typing import Any

from bokeh.embed import components, file_html
from bokeh.embed.bundle import bundle_for_objs_and_resources
from bokeh.models import LayoutDOM
from bokeh.resources import CDN, INLINE
from jinja2 import Template

from attribution.results import AttributionResult, ContributionGraph, Provenance, ResultType, utc_now
from exporters.tokens import page_text

META_PREFIX = "attribution-explorer"
PROVENANCE_SCRIPT_ID = "attribution-explorer-provenance"

_STYLE = """<style>
  .ae-provenance { font: 13px/1.4 system-ui, sans-serif; color: #333; margin: 8px 12px; }
  .ae-provenance h1 { font-size: 17px; margin: 0 0 4px; }
  .ae-provenance dl { display: grid; grid-template-columns: max-content auto; gap: 1px 12px; margin: 0; }
  .ae-provenance dt { font-weight: 600; }
  .ae-provenance dd { margin: 0; overflow-wrap: anywhere; }
</style>"""

# Extends Bokeh's own page template: metadata in <head>, the provenance header above the figure.
_PAGE_TEMPLATE = Template(
    """{% extends base %}
{% block preamble %}{{ ae_head }}{% endblock %}
{% block contents %}{{ ae_header }}{{ super() }}{% endblock %}"""
)


def _exporter_versions() -> dict[str, str]:
    versions = {}
    for name in ("attribution-explorer", "bokeh"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _provenance_fields(provenance: Provenance) -> dict[str, Any]:
    return {
        "model_id": provenance.model_id,
        "model_revision": provenance.model_revision,
        "model_kind": provenance.model_kind,
        "model_type": provenance.model_type,
        "library_versions": dict(provenance.library_versions),
        "created_at": provenance.created_at,
        **{
            name: code
            for name, code in (
                ("source_language", provenance.source_language),
                ("target_language", provenance.target_language),
            )
            if code is not None
        },
    }


def _attribution_record(result: AttributionResult) -> dict[str, Any]:
    parameters = dict(result.method_params)
    if result.contrast_target is not None:
        parameters["contrast_target"] = result.contrast_target
    return {**_provenance_fields(result.provenance), "method": result.method, "parameters": parameters}


def intervention_parameters(result: Any) -> dict[str, Any]:
    """The settings of an intervention result worth stating on its page (texts are shown in the figure)."""
    names = (
        "mode",
        "mean_over",
        "components",
        "counterfactual_text",
        "counterfactual_target",
        "direction",
        "root_position",
        "target_token",
        "contrast_token",
        "threshold",
        "explanation",
        "replacement",
        "fractions",
    )
    parameters = {name: getattr(result, name) for name in names if getattr(result, name, None) is not None}
    if isinstance(parameters.get("components"), list) and len(parameters["components"]) > 20:
        parameters["components"] = [*parameters["components"][:20], f"… {len(result.components) - 20} more"]
    return parameters


def provenance_record(result: ResultType) -> dict[str, Any]:
    """Where the figure's data came from and how the page was made, as JSON-ready data."""
    own = _own_record(result)
    if own is not None:
        record: dict[str, Any] = own
    elif isinstance(result, AttributionResult):
        record = _attribution_record(result)
    elif isinstance(result, ContributionGraph):
        parameters = {
            "threshold": result.threshold,
            "renormalized": result.renormalized,
            "root_tokens": list(result.root_tokens),
            "final_norm_in_logit_lens": getattr(result, "final_norm_in_logit_lens", True),
        }
        record = {
            **_provenance_fields(result.provenance),
            "method": "information flow routes",
            "parameters": parameters,
        }
    elif hasattr(result, "provenance"):  # intervention results (attribution.interventions.results)
        record = {
            **_provenance_fields(result.provenance),
            "method": result.SCHEMA,
            "parameters": intervention_parameters(result),
        }
    else:
        record = {
            "method": "comparison",
            "parameters": {"gold_alignment": result.gold_alignment},
            "compared": [
                {"label": label, **_attribution_record(item)}
                for label, item in zip(result.labels, result.results, strict=False)
            ],
        }
    record["exported_at"] = utc_now()
    record["exporter_versions"] = _exporter_versions()
    return record


def _own_record(result: Any) -> dict[str, Any] | None:
    """A result that states its own provenance (a corpus run: ``provenance_fields()``), else None."""
    fields = getattr(result, "provenance_fields", None)
    return dict(fields()) if callable(fields) else None


def _rows(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The human-readable (label, value) lines of a provenance record."""

    def versions(mapping: dict[str, str]) -> str:
        return ", ".join(f"{name} {version}" for name, version in mapping.items()) or "unknown"

    def parameters(mapping: dict[str, Any]) -> str:
        return ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in mapping.items()) or "none"

    def model(entry: dict[str, Any]) -> str:
        return f"{entry['model_id']} (revision {entry.get('model_revision') or 'unknown'}, {entry.get('model_type')})"

    if "compared" in record:
        rows = [
            (entry["label"], f"{model(entry)}; method {entry['method']}; {parameters(entry['parameters'])}")
            for entry in record["compared"]
        ]
        if record["parameters"].get("gold_alignment"):
            rows.append(("gold alignment", record["parameters"]["gold_alignment"]))
        library = record["compared"][0]["library_versions"] if record["compared"] else {}
        created = record["compared"][0]["created_at"] if record["compared"] else "unknown"
    else:
        rows = [
            ("model", model(record)),
            ("method", record["method"]),
            ("parameters", parameters(record["parameters"])),
        ]
        if record.get("source_language") or record.get("target_language"):
            languages = f"{record.get('source_language') or 'default'} → {record.get('target_language') or 'default'}"
            rows.insert(1, ("languages", languages))
        library, created = record["library_versions"], record["created_at"]
    rows += [
        ("libraries", versions({**library, **record["exporter_versions"]})),
        ("computed", created),
        ("exported", record["exported_at"]),
    ]
    return rows


def provenance_html(title: str, record: dict[str, Any]) -> str:
    """A visible, escaped provenance block: title, then one line per fact (each as :func:`shown`)."""
    items = "".join(f"<dt>{shown(label)}</dt><dd>{shown(value)}</dd>" for label, value in _rows(record))
    return f'<header class="ae-provenance"><h1>{shown(title)}</h1><dl>{items}</dl></header>'


def shown(text: Any) -> str:
    """A text of the page as HTML (text or attribute value): invisible and direction-changing characters
    marked (:func:`~exporters.tokens.page_text`), then escaped."""
    return html.escape(page_text(str(text)))


def provenance_json_script(record: dict[str, Any]) -> str:
    """The record as ``<script type="application/json">``, escaped so no string can close the tag."""
    text = json.dumps(record, ensure_ascii=False, sort_keys=True)
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" id="{PROVENANCE_SCRIPT_ID}">{text}</script>'


def provenance_meta_tags(record: dict[str, Any]) -> str:
    """``<meta name="attribution-explorer:…">`` tags for the main facts (search engines, scrapers)."""
    first = record["compared"][0] if record.get("compared") else record
    facts = {
        "model-id": first.get("model_id"),
        "model-revision": first.get("model_revision"),
        "method": record["method"] if "compared" not in record else ", ".join(e["method"] for e in record["compared"]),
        "created-at": first.get("created_at"),
        "exported-at": record["exported_at"],
        "library-versions": "; ".join(
            f"{k}={v}" for k, v in {**first.get("library_versions", {}), **record["exporter_versions"]}.items()
        ),
    }
    return "".join(
        f'<meta name="{META_PREFIX}:{name}" content="{shown(value)}">'
        for name, value in facts.items()
        if value is not None
    )


def render_page(layout: LayoutDOM, result: ResultType, *, title: str, mode: str) -> str:
    """A full HTML page (``standalone``: BokehJS inlined; ``cdn``: BokehJS from cdn.bokeh.org)."""
    record = provenance_record(result)
    head = provenance_meta_tags(record) + provenance_json_script(record) + _STYLE
    return file_html(
        layout,
        resources=INLINE if mode == "standalone" else CDN,
        title=page_text(title),
        template=_PAGE_TEMPLATE,
        template_variables={"ae_head": head, "ae_header": provenance_html(title, record)},
    )


def render_snippet(layout: LayoutDOM, result: ResultType, *, title: str) -> str:
    """Paste-in HTML for a blog: BokehJS script tags (CDN), provenance, the figure's div and script."""
    record = provenance_record(result)
    bundle = bundle_for_objs_and_resources([layout], CDN)
    script, div = components(layout)
    return "\n".join(
        [
            f"<!-- {shown(title)}: made with Attribution Explorer; BokehJS tags can move to <head> -->",
            _script_tags([str(getattr(file, "url", file)) for file in bundle.js_files]),
            provenance_json_script(record),
            _STYLE,
            provenance_html(title, record),
            div,
            script,
        ]
    )


def _script_tags(urls: list[str]) -> str:
    return "\n".join(f'<script src="{html.escape(url, quote=True)}" crossorigin="anonymous"></script>' for url in urls)


def iframe_snippet(page_html: str, *, title: str, height: int = 900) -> str:
    """An ``<iframe srcdoc=…>`` holding a whole page: isolated from the host page's scripts and CSS."""
    return (
        f'<iframe title="{shown(title)}" srcdoc="{html.escape(page_html, quote=True)}" '
        f'style="width: 100%; height: {int(height)}px; border: 0" sandbox="allow-scripts allow-downloads"></iframe>'
    )
