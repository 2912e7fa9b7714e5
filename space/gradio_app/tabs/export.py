"""The Export tab: the current view's result as a page, snippet or JSON (``/export``), or pushed to the Hub (``/push``).

"The current view" is the analysis tab the user looked at last; its result JSON comes back from the
browser and is read like every result a request sends (text only, size-capped, schema-checked). File
names come from the result kinds' registry (:func:`attribution.result_kinds.file_stem`).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from attribution.errors import InvalidInputError
from attribution.result_kinds import file_stem
from attribution.results import ResultType
from space.gradio_app.context import AppContext, read_result_json
from space.gradio_app.wiring import Page, user_errors

EXPORT_FORMATS = {
    "HTML page (self-contained, works offline)": "standalone",
    "Blog snippet (script + div)": "snippet",
    "Blog snippet, self-contained (works offline)": "snippet-inline",
    "Iframe embed (sized to its content)": "iframe",
    "Result JSON": "json",
}
#: The analysis tabs whose results can be exported, by their name here, and the word for each in messages.
EXPORT_SOURCES = {
    "Attribute": "attribute",
    "Contribution graph": "contribution graph",
    "Compare": "compare",
    "Intervene": "intervene",
}


def _result_from_json(ctx: AppContext, result_json: str | None, what: str) -> ResultType:
    if not result_json or not result_json.strip():
        raise InvalidInputError(f"Nothing to export yet: run the {what} tab first.")
    return read_result_json(result_json, what, max_bytes=ctx.config.max_result_bytes)


@dataclass
class ExportView:
    path: Path  # the file to download
    preview_html: str | None  # ``<iframe srcdoc=…>`` of the self-contained page, sized to it (None for JSON)


def make_export(ctx: AppContext, result_json: str | None, what: str, export_format: str) -> ExportView:
    """Write the chosen result as a page, snippet or JSON into a fresh file for download.

    The content is made first and written only when complete, so a failed export leaves no file.
    """
    from exporters import export_result
    from exporters.embed import iframe_embed

    if export_format not in EXPORT_FORMATS:
        raise InvalidInputError(f"Unknown export format {export_format!r}; choose one of {', '.join(EXPORT_FORMATS)}.")
    result = _result_from_json(ctx, result_json, what)
    mode = EXPORT_FORMATS[export_format]
    stem = file_stem(result)
    if mode == "json":
        return ExportView(ctx.exports.write(f"{stem}.json", result.to_json()), None)
    export = export_result(result, mode=mode)
    suffix = "" if mode == "standalone" else f"-{mode}"
    path = ctx.exports.write(f"{stem}{suffix}.html", export.html)
    page = export if mode == "standalone" else export_result(result, mode="standalone")
    return ExportView(path, iframe_embed(page.html, title=export.title, script=False))


def push_to_hub(
    ctx: AppContext,
    result_json: str | None,
    what: str,
    repo_id: str | None,
    token: str | None,
) -> str:
    """Commit the standalone page, the result JSON and a README to ``repo_id``; returns the file's URL."""
    from exporters import export_result
    from exporters.hub import HubPushError, check_repo_id, push_export

    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise InvalidInputError("Type the Hub repository to push to, e.g. 'your-name/attribution-demo'.")
    repo_id = check_repo_id(repo_id)
    token = (token or "").strip()
    if not token:
        raise InvalidInputError("Log in with Hugging Face or paste a write token to push to the Hub.")
    result = _result_from_json(ctx, result_json, what)
    export = export_result(result, mode="standalone")
    endpoint = ctx.config.hub_endpoint or os.environ.get("HF_ENDPOINT") or None
    try:
        return push_export(
            export,
            result,
            repo_id,
            repo_type="dataset",
            token=token,
            endpoint=endpoint,
            timeout=ctx.config.hub_push_timeout_s,
        )
    except HubPushError as error:
        raise HubPushError(for_browser_users(str(error))) from None


def for_browser_users(message: str) -> str:
    """A Hub push error reworded for someone in the app (no local files, no HF_TOKEN, no terminal)."""
    from exporters.hub import KEPT

    message = message.replace(f"; {KEPT}", "").rstrip(". ")
    for cli_words, app_words in (
        ("log in again or set HF_TOKEN", "sign in again or paste another write token"),
        ("run `hf auth login` or set HF_TOKEN", "sign in with Hugging Face or paste a write token"),
    ):
        message = message.replace(cli_words, app_words)
    message = message[:1].upper() + message[1:]
    return f"{message}. Nothing was published; your result is still here (download it with 'Create file')."


def page_preview(label: str, elem_id: str) -> gr.HTML:
    """An HTML output for an ``<iframe srcdoc>`` preview of a page, which takes the page's height.

    The page posts its height; the listener (:data:`exporters.embed.FRAME_HOST_JS`, installed once per browser
    tab by whichever preview loads first) sizes the frame to it and hides its loading line.
    """
    from exporters.embed import FRAME_HOST_JS

    return gr.HTML(label=label, elem_id=elem_id, js_on_load=FRAME_HOST_JS)


def oauth_available() -> bool:
    """Sign-in works on a Space whose front matter says ``hf_oauth: true`` (Spaces then set OAUTH_CLIENT_ID).

    Elsewhere Gradio would mock the login with the machine's own Hub token, which is not what a user
    of a deployed app should push with, so the button is left out and the token box is the way.
    """
    return os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("OAUTH_CLIENT_ID"))


def _current_json(source: str, *tab_jsons: str) -> str:
    return dict(zip(EXPORT_SOURCES, tab_jsons, strict=True)).get(source, "")


def _endpoints(ctx: AppContext):
    """``/export`` and ``/push``: the Intervene tab's JSON comes last in both (older API calls stay valid)."""

    @user_errors
    def export(source, format_, attribute_json, graph_json, compare_json, intervene_json):
        what = EXPORT_SOURCES.get(source, source)
        chosen = _current_json(source, attribute_json, graph_json, compare_json, intervene_json)
        view = make_export(ctx, chosen, what, format_)
        return str(view.path), view.preview_html or ""

    @user_errors
    def push(
        source,
        attribute_json,
        graph_json,
        compare_json,
        repo,
        token,
        intervene_json,
        oauth: gr.OAuthToken | None,
    ):
        what = EXPORT_SOURCES.get(source, source)
        chosen = _current_json(source, attribute_json, graph_json, compare_json, intervene_json)
        url = push_to_hub(ctx, chosen, what, repo, token or (oauth.token if oauth else None))
        return f'Pushed: <a href="{html.escape(url)}" target="_blank">{html.escape(url)}</a>'

    return export, push


def build(page: Page) -> None:
    """The tab, after the analysis tabs (it exports their results: ``page.results``)."""
    with gr.Tab("Export", id="export"):
        with gr.Row():
            source = gr.Radio(list(EXPORT_SOURCES), value="Attribute", label="Result of the tab")
            format_ = gr.Radio(list(EXPORT_FORMATS), value=next(iter(EXPORT_FORMATS)), label="Format")
        run = gr.Button("Create file", variant="primary", elem_id="export-run")
        file = gr.File(label="Download", interactive=False, elem_id="export-file")
        preview = page_preview("Preview", "export-preview")
        gr.Markdown("### Push to the Hugging Face Hub (dataset repository)")
        with gr.Row():
            repo = gr.Textbox(label="Repository", placeholder="your-name/attribution-demo")
            token = gr.Textbox(label="Write token (or sign in)", type="password")
            if oauth_available():
                gr.LoginButton()
        push_run = gr.Button("Push")
        link = gr.Markdown(elem_id="export-link")

        # The Export tab exports the current view: the analysis tab the user looked at last.
        shown = [page.results[name] for name in EXPORT_SOURCES]
        for name, tab in zip(EXPORT_SOURCES, shown, strict=True):
            tab.tab.select(lambda s=name: s, None, source, queue=False, api_visibility="private")

        export, push = _endpoints(page.ctx)
        attribute_json, graph_json, compare_json, intervene_json = (tab.result_json for tab in shown)
        jsons = [attribute_json, graph_json, compare_json]  # the Intervene tab's JSON comes last
        run.click(
            export,
            [source, format_, *jsons, intervene_json],
            [file, preview],
            api_name="export",
            **page.groups["light"],
        )
        push_run.click(
            push, [source, *jsons, repo, token, intervene_json], link, api_name="push", **page.groups["push"]
        )
