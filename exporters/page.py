"""HTML around a Bokeh layout: provenance header and metadata, full pages, blog snippets, iframe embeds.

Every mode holds the same block (:func:`exporters.embed.embed_block`): a full page is that block with BokehJS
in its ``<head>``; a snippet is the block alone, loading BokehJS once per page from cdn.bokeh.org
(``snippet``) or from itself (``snippet-inline``); an iframe embed is a full page in ``<iframe srcdoc>``,
sized to its content.

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

from bokeh.models import LayoutDOM

from attribution.results import AttributionResult, ContributionGraph, Provenance, ResultType, utc_now
from exporters.embed import embed_block, iframe_embed, json_script, page_scripts
from exporters.tokens import page_text

META_PREFIX = "attribution-explorer"
#: The id of a full page's provenance JSON (a page holds one figure; a snippet's is found by its attribute).
PROVENANCE_SCRIPT_ID = "attribution-explorer-provenance"
PROVENANCE_ATTRIBUTE = 'data-ae="provenance"'

# A full page: its own colours (light or dark with the reader's system, or the host's inside an iframe embed).
_PAGE_STYLE = """<style>
  :root { color-scheme: light dark; }
  html, body { margin: 0; }
  body { padding: 8px 12px; background: #ffffff; color: #1f2328;
         font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  @media (prefers-color-scheme: dark) { body { background: #0f1115; color: #e6e8eb; } }
  body > .ae-embed.ae-embed { margin: 0; }
</style>"""


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


def provenance_html(title: str, record: dict[str, Any], *, heading: bool = False) -> str:
    """A visible, escaped provenance block: title, then one line per fact (each as :func:`shown`).

    Custom elements, which no selector of a host page's stylesheet names; the title is the page's ``<h1>``
    when ``heading`` (a full page), and no heading in a snippet (the post has its own).
    """
    items = "".join(
        f"<ae-fact><ae-key>{shown(label)}</ae-key><ae-value>{shown(value)}</ae-value></ae-fact>"
        for label, value in _rows(record)
    )
    tag = "h1" if heading else "ae-title"
    return f'<ae-provenance><{tag} class="ae-title">{shown(title)}</{tag}><ae-facts>{items}</ae-facts></ae-provenance>'


def shown(text: Any) -> str:
    """A text of the page as HTML (text or attribute value): invisible and direction-changing characters
    marked (:func:`~exporters.tokens.page_text`), then escaped."""
    return html.escape(page_text(str(text)))


def provenance_json_script(record: dict[str, Any], *, page: bool = True) -> str:
    """The record as ``<script type="application/json">``, escaped so no string can close the tag.

    A page's has :data:`PROVENANCE_SCRIPT_ID` as its id; a snippet's has no id (a post may hold the same
    snippet twice), only :data:`PROVENANCE_ATTRIBUTE`.
    """
    text = json.dumps(record, ensure_ascii=False, sort_keys=True)
    return json_script(text, f'id="{PROVENANCE_SCRIPT_ID}"' if page else PROVENANCE_ATTRIBUTE)


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
    block = embed_block(layout, header=provenance_html(title, record, heading=True), libraries="page")
    head = [
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{shown(title)}</title>",
        provenance_meta_tags(record),
        provenance_json_script(record),
        _PAGE_STYLE,
        page_scripts(layout, inline=mode == "standalone"),
    ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            *head,
            "</head>",
            "<body data-ae-page>",
            block,
            "</body>",
            "</html>",
        ]
    )


def render_snippet(layout: LayoutDOM, result: ResultType, *, title: str, inline: bool) -> str:
    """Paste-in HTML for a blog or a notebook: the block, loading BokehJS once per page (from the CDN, or from
    itself when ``inline``)."""
    record = provenance_record(result)
    where = "carries BokehJS" if inline else "loads BokehJS from cdn.bokeh.org"
    comment = (
        f"<!-- {shown(title)}: made with Attribution Explorer. Paste it anywhere, as often as you like: "
        f"it {where}, once per page. -->"
    )
    block = embed_block(
        layout,
        header=provenance_html(title, record),
        data=provenance_json_script(record, page=False),
        libraries="inline" if inline else "cdn",
    )
    return f"{comment}\n{block}"


def render_iframe(page_html: str, *, title: str) -> str:
    """A whole page in an ``<iframe srcdoc=…>``, isolated from the host's scripts and CSS, sized to its content."""
    comment = f"<!-- {shown(title)}: made with Attribution Explorer (an iframe that takes its content's height) -->"
    return f"{comment}\n{iframe_embed(page_html, title=page_text(title))}"
