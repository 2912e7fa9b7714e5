"""One exported figure as a block that draws itself wherever it is pasted: pages, blog posts, notebooks, iframes.

A block is a ``<div class="ae-embed">`` holding the provenance header, an ``<ae-figure>`` the figure is drawn
into, the figure's Bokeh document as JSON and a small script (:data:`RUNTIME_JS`). The same block is the body
of an exported page, a blog snippet and a notebook cell's output, so a page may hold any number of blocks, of
any kinds, in any order, the same one twice included:

- **BokehJS loads once per page.** The script loads each BokehJS bundle the figure needs (``bokeh``, then
  ``bokeh-widgets`` / ``bokeh-tables``) only if the page does not have it yet, through one promise per bundle
  shared by every block of the page, and queues the drawing behind it. A bundle comes from the page itself
  (a full page's ``<head>``), from the block (``snippet-inline``: gzip + base64 inside
  ``<script type="text/plain">``, run once) or from cdn.bokeh.org (``snippet``). A second copy of BokehJS on
  a page replaces the first one's registry and breaks the widgets of figures drawn later, which is why
  snippets never carry a plain ``<script src=…bokeh…>``.
- **No ids.** The script finds its blocks by class, and draws each one not drawn yet; Bokeh renders into the
  element itself (``embed_items`` takes elements as roots), so nothing in a block needs an id and a block
  pasted twice still has none twice.
- **Styles stay in.** Our own elements are custom elements (``ae-provenance``, ``ae-facts``…) that no bare
  ``header``/``dl``/``dt``/``div`` selector of a blog's stylesheet matches, under a wrapper whose CSS is reset
  (``all: revert``) and scoped to ``.ae-embed``; the figure is drawn inside an open shadow root of
  ``<ae-figure>``, where no page selector reaches (Bokeh draws inside shadow roots anyway). Text inherits the
  host's colour and font family.
- **Light and dark.** The script reads the colour behind the block (the nearest opaque background above it,
  else the page's scheme), marks the block ``data-ae-scheme="dark"`` or ``"light"``, and sets the figure's
  colours for it: every model colour of :data:`~exporters.figure_common.DARK_COLOURS` gets its dark twin
  (collected here, per model, as ``[id, property, light, dark]``), and Bokeh's widgets, tables and toolbar
  take their surfaces from CSS variables the scheme sets. It follows the host when it switches scheme
  (``prefers-color-scheme`` or a class on ``<html>``/``<body>``). Tooltips, which BokehJS appends to ``<body>``
  as popovers, take the scheme of the block under the pointer, and the page's rules are reverted on them.
- **Iframes fit their content.** A full page inside an iframe posts its height to the parent whenever it
  changes, and takes the host's colours when the parent sends them; :data:`FRAME_HOST_JS` is the parent's
  half (in the iframe embed code, and in the app).
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
from functools import lru_cache
from typing import Any

from bokeh import __version__ as BOKEH_VERSION
from bokeh.core.json_encoder import serialize_json
from bokeh.core.property.color import Color
from bokeh.core.property.container import Seq
from bokeh.core.property.dataspec import ColorSpec
from bokeh.core.property.nullable import Nullable
from bokeh.embed.bundle import bundle_for_objs_and_resources
from bokeh.embed.util import OutputDocumentFor, standalone_docs_json_and_render_items
from bokeh.models import ColorMapper, InlineStyleSheet, LayoutDOM, Model, UIElement
from bokeh.resources import CDN, INLINE

from exporters.figure_common import DARK_COLOURS

EMBED_CLASS = "ae-embed"
FRAME_CLASS = "ae-frame"
#: Where the bundles come from: the page's own ``<head>``, the block itself, or cdn.bokeh.org.
LIBRARIES = ("page", "inline", "cdn")
#: An iframe embed's height before its page has said how tall it is (and where scripts are stripped).
FRAME_START_PX = 600

# Bokeh's chrome (widgets, tables, toolbar, Divs) draws its surfaces with CSS variables defined on every view's
# :host; this sheet, added to every model of an embedded figure, takes them from variables the block's scheme
# sets, falling back to Bokeh's own light values; only the toolbar's overflow mark and the tooltips' labels, which
# Bokeh draws below 4.5:1 contrast, get darker.
_BOKEH_SCHEME_CSS = """:host {
  --background-color: var(--ae-surface, #ffffff);
  --hover-color: var(--ae-hover, #f9f9f9);
  --border-color: var(--ae-border, #cccccc);
  --divider-color: var(--ae-divider, #e5e5e5);
  --surface-background-color: var(--ae-raised, #e6e6e6);
  --odd: var(--ae-odd, #f0f0f0);
  --special: var(--ae-raised, #f5f5f5);
  --selected: var(--ae-selected, #f0f8ff);
  --muted-text: var(--ae-muted, #909090);
  --color: var(--ae-text, #18191d);
}
.bk-input, select, input { color: inherit; }
.bk-tool-overflow { color: var(--ae-overflow, #666666); }
.bk-tooltip-row-label { color: var(--ae-label, #0b6e9c); }
.noUi-target { background: var(--ae-raised, #fafafa); border-color: var(--ae-border, #d3d3d3); }"""

_EMBED_CSS = f""".{EMBED_CLASS}.{EMBED_CLASS} {{
  all: revert; display: block; position: relative; box-sizing: border-box; max-width: 100%;
  margin: 1.2em 0; padding: 0; border: 0; background: transparent; color: inherit;
  font-family: inherit; font-size: 14px; line-height: 1.45; font-style: normal; font-weight: 400;
  letter-spacing: normal; word-spacing: normal; text-transform: none; text-align: left; text-indent: 0;
  text-shadow: none; white-space: normal;
}}
.{EMBED_CLASS}.{EMBED_CLASS} :is(ae-provenance, ae-facts, ae-fact, ae-key, ae-value, ae-figure, ae-status) {{
  all: revert; box-sizing: border-box; color: inherit; font: inherit;
}}
.{EMBED_CLASS}.{EMBED_CLASS} ae-provenance {{ display: block; margin: 0 0 8px; }}
.{EMBED_CLASS}.{EMBED_CLASS} .ae-title {{
  all: revert; display: block; margin: 0 0 4px; padding: 0; border: 0; color: inherit;
  font-family: inherit; font-size: 17px; font-weight: 600; line-height: 1.3;
}}
.{EMBED_CLASS}.{EMBED_CLASS} ae-facts {{
  display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 1px 12px; font-size: 12.5px;
}}
.{EMBED_CLASS}.{EMBED_CLASS} ae-fact {{ display: contents; }}
.{EMBED_CLASS}.{EMBED_CLASS} ae-key {{ display: block; font-weight: 600; }}
.{EMBED_CLASS}.{EMBED_CLASS} ae-value {{ display: block; overflow-wrap: anywhere; }}
.{EMBED_CLASS}.{EMBED_CLASS} ae-figure {{ display: block; width: 100%; }}
.{EMBED_CLASS}.{EMBED_CLASS} ae-status {{ display: block; font-size: 12.5px; font-style: italic; }}
.{EMBED_CLASS}[data-ae-state="drawn"] ae-status {{ display: none; }}
.{EMBED_CLASS}[data-ae-scheme="dark"], body > div.bk-Tooltip[data-ae-scheme="dark"] {{
  --bokeh-icon-color: #aab2bd; --ae-surface: #16191f; --ae-hover: #222731; --ae-border: #4a515c;
  --ae-divider: #3a3f48; --ae-raised: #262a31; --ae-odd: #1d2027; --ae-selected: #1f3147; --ae-muted: #a3aab4;
  --ae-text: #e6e8eb; --ae-overflow: #aab2bd; --ae-label: #7cc8ee;
}}
body > div.bk-Tooltip.bk-Tooltip {{ all: revert-layer; }}"""

# The colour behind an element, and whether it is dark (shared by the block's script and the iframe host's).
_BACKGROUND_JS = r"""
  function aeRgb(text) {
    var m = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,\/]\s*([\d.]+)(%?))?\s*\)$/.exec(text || "");
    if (!m) return null;
    var alpha = m[4] === undefined ? 1 : parseFloat(m[4]) / (m[5] ? 100 : 1);
    return [+m[1], +m[2], +m[3], alpha];
  }
  function aeBackground(el) {
    for (var node = el; node; node = node.parentElement || (node.getRootNode && node.getRootNode().host) || null) {
      var colour = aeRgb(getComputedStyle(node).backgroundColor);
      if (colour && colour[3] >= 0.5) return colour;
    }
    var scheme = getComputedStyle(document.documentElement).colorScheme || "";
    var dark = /dark/.test(scheme) && window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches;
    return dark ? [18, 18, 18, 1] : [255, 255, 255, 1];
  }
  function aeIsDark(rgb) {
    var linear = rgb.slice(0, 3).map(function (v) {
      v /= 255;
      return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2] < 0.179;
  }
  function aeLater(shared, key, work) {
    if (shared[key]) return;
    shared[key] = true;
    requestAnimationFrame(function () { shared[key] = false; work(); });
  }
  function aeWatchScheme(shared, key, work) {
    var later = function () { aeLater(shared, key, work); };
    if (window.matchMedia) matchMedia("(prefers-color-scheme: dark)").addEventListener("change", later);
    var observer = new MutationObserver(later);
    [document.documentElement, document.body].forEach(function (el) {
      if (el) observer.observe(el, {attributes: true});
    });
  }
"""

_RUNTIME_TEMPLATE = r"""(function () {
  "use strict";
  var VERSION = __VERSION__;
  var PLUGINS = {"bokeh-widgets": "Widgets", "bokeh-tables": "Tables"};
  var SCHEME_CSS = __SCHEME_CSS__;
  var shared = window.__attributionExplorerEmbeds = window.__attributionExplorerEmbeds || {loads: {}, drawn: []};
__BACKGROUND__
  function bokeh() { return window.Bokeh && window.Bokeh[VERSION]; }
  function present(name) {
    var b = bokeh();
    return !!b && (name === "bokeh" || (PLUGINS[name] !== undefined && !!b[PLUGINS[name]]));
  }
  function run(source) {
    var script = document.createElement("script");
    script.textContent = source;
    document.head.appendChild(script);
  }
  function inflate(base64) {
    var bytes = Uint8Array.from(atob(base64), function (c) { return c.charCodeAt(0); });
    return new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
  }
  function fetchScript(url) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = url;
      script.crossOrigin = "anonymous";
      script.onload = function () { resolve(); };
      script.onerror = function () {
        reject(new Error("BokehJS did not load from " + url + " (offline? the snippet-inline mode needs no network)"));
      };
      document.head.appendChild(script);
    });
  }
  function load(bundle, box) {
    var key = bundle.name + "-" + VERSION;
    if (!shared.loads[key]) {
      var code = box.querySelector('script[data-ae-bundle="' + bundle.name + '"]');
      var loading = present(bundle.name) ? Promise.resolve()
        : code ? inflate(code.textContent).then(run)
        : bundle.url ? fetchScript(bundle.url)
        : Promise.reject(new Error("BokehJS " + VERSION + " (" + bundle.name + ") is not on this page"));
      shared.loads[key] = loading.catch(function (error) { delete shared.loads[key]; throw error; });
    }
    return shared.loads[key];
  }
  function theme(entry) {
    var scheme = aeIsDark(aeBackground(entry.box)) ? "dark" : "light";
    if (entry.scheme === scheme) return;
    entry.scheme = scheme;
    entry.box.setAttribute("data-ae-scheme", scheme);
    entry.overrides.forEach(function (item) {
      var model = entry.doc.get_model_by_id(item[0]);
      var change = {};
      change[item[1]] = scheme === "dark" ? item[3] : item[2];
      if (model) model.setv(change);
    });
  }
  function themeAll() { shared.drawn.forEach(theme); }
  // BokehJS appends two holders of its own (notifications, minimised dialogs) to <body>: attribute-less divs
  // whose shadow root starts with a style. They move into a shadow root of ours, out of reach of the page's
  // `div` rules (a padded, bordered div would show them as boxes in the post).
  function adoptBokehHolders() {
    var strays = Array.prototype.filter.call(document.body.children, function (el) {
      return el.tagName === "DIV" && el.attributes.length === 0 && el.shadowRoot
        && el.shadowRoot.firstElementChild && el.shadowRoot.firstElementChild.tagName === "STYLE";
    });
    if (strays.length === 0) return;
    var home = document.querySelector("body > ae-bokeh-holders");
    if (!home) {
      home = document.createElement("ae-bokeh-holders");
      home.attachShadow({mode: "open"});
      document.body.appendChild(home);
    }
    strays.forEach(function (el) { home.shadowRoot.appendChild(el); });
  }
  // BokehJS shows a tooltip as a popover appended to <body> (again at each move), outside every block: the
  // block's style reverts the page's rules on it (`all: revert-layer`: back to Bokeh's own), and here it takes
  // the scheme of the block under the pointer and the sheet that maps Bokeh's colours to the scheme's.
  function dressTooltips() {
    var tooltips = document.body.querySelectorAll(":scope > div.bk-Tooltip");
    Array.prototype.forEach.call(tooltips, function (el) {
      el.setAttribute("data-ae-scheme", shared.pointed && shared.pointed.scheme || "light");
      if (!el.shadowRoot || el.shadowRoot.querySelector("style[data-ae]")) return;
      var style = document.createElement("style");
      style.setAttribute("data-ae", "");
      style.textContent = SCHEME_CSS;
      el.shadowRoot.appendChild(style);
    });
  }
  function watchBody() {
    if (shared.adopting || !document.body) return;
    shared.adopting = true;
    var watch = function () { adoptBokehHolders(); dressTooltips(); };
    watch();
    new MutationObserver(watch).observe(document.body, {childList: true});
  }
  function draw(box) {
    var spec = JSON.parse(box.querySelector('script[data-ae="figure"]').textContent);
    var target = document.createElement("div");
    var chain = spec.bundles.reduce(function (done, bundle) {
      return done.then(function () { return load(bundle, box); });
    }, Promise.resolve());
    return chain.then(function () {
      var holder = box.querySelector("ae-figure");
      var shadow = holder.shadowRoot || holder.attachShadow({mode: "open"});
      target.style.visibility = "hidden";
      shadow.appendChild(target);
      var docs = {}, roots = {};
      docs[spec.docid] = spec.doc;
      roots[spec.root] = target;
      var item = {docid: spec.docid, elementid: target, root_ids: [spec.root], roots: roots};
      return bokeh().embed.embed_items(docs, [item]);
    }).then(function (views) {
      var entry = {box: box, doc: Array.from(views[0])[0].model.document, overrides: spec.overrides, scheme: null};
      shared.drawn.push(entry);
      theme(entry);
      box.addEventListener("pointerover", function () { shared.pointed = entry; });
      box.setAttribute("data-ae-state", "drawn");
      requestAnimationFrame(function () { target.style.visibility = ""; });  // shown in its scheme's colours
      if (!shared.watching) {
        shared.watching = true;
        aeWatchScheme(shared, "themePending", themeAll);
      }
    }, function (error) {
      box.setAttribute("data-ae-state", "failed");
      var why = error && error.message || error;
      box.querySelector("ae-status").textContent = "This figure could not be drawn: " + why;
    });
  }
  function followHost() {
    if (shared.framed || window.parent === window || !document.body.hasAttribute("data-ae-page")) return;
    shared.framed = true;
    var post = function () {
      var height = Math.ceil(document.body.getBoundingClientRect().height);
      window.parent.postMessage({type: "attribution-explorer:height", height: height}, "*");
    };
    new ResizeObserver(post).observe(document.body);
    window.addEventListener("message", function (event) {
      var data = event.data;
      if (event.source !== window.parent || !data || data.type !== "attribution-explorer:host") return;
      var background = aeRgb(data.background), colour = aeRgb(data.color);
      if (background && background[3] >= 0.5) document.body.style.backgroundColor = data.background;
      if (colour) document.body.style.color = data.color;
    });
  }
  var boxes = document.querySelectorAll(".__CLASS__:not([data-ae-state])");
  Array.prototype.forEach.call(boxes, function (box) {
    box.setAttribute("data-ae-state", "loading");
    draw(box);
  });
  if (document.body) {
    followHost();
    watchBody();
  } else {
    document.addEventListener("DOMContentLoaded", watchBody);
  }
})();"""


def _without_blank_lines(text: str) -> str:
    """Markdown ends an HTML block at a blank line: nothing pasted into a post may have one."""
    return "\n".join(line for line in text.splitlines() if line.strip())


#: The block's script: draws every block of the page not drawn yet (see the module docstring).
RUNTIME_JS = _without_blank_lines(
    _RUNTIME_TEMPLATE.replace("__VERSION__", json.dumps(BOKEH_VERSION))
    .replace("__BACKGROUND__", _BACKGROUND_JS)
    .replace("__CLASS__", EMBED_CLASS)
    .replace("__SCHEME_CSS__", json.dumps(_BOKEH_SCHEME_CSS))
)

_FRAME_HOST_TEMPLATE = r"""(function () {
  "use strict";
  if (window.__attributionExplorerFrames) return;
  var shared = window.__attributionExplorerFrames = {};
  var LEAST = 60, MOST = 20000;
__BACKGROUND__
  function frames() { return Array.prototype.slice.call(document.querySelectorAll("iframe.__FRAME__")); }
  function tell(frame) {
    if (!frame.contentWindow) return;
    var background = aeBackground(frame.parentElement || frame);
    frame.contentWindow.postMessage({
      type: "attribution-explorer:host",
      background: "rgb(" + background.slice(0, 3).join(", ") + ")",
      color: getComputedStyle(frame).color
    }, "*");
  }
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || data.type !== "attribution-explorer:height" || !(Number(data.height) > 0)) return;
    frames().forEach(function (frame) {
      if (frame.contentWindow !== event.source) return;
      frame.style.height = Math.min(MOST, Math.max(LEAST, Math.ceil(Number(data.height)))) + "px";
      if (frame.hasAttribute("data-ae-ready")) return;
      frame.setAttribute("data-ae-ready", "");
      var note = frame.parentElement && frame.parentElement.querySelector(".ae-frame-loading");
      if (note) note.style.display = "none";
      tell(frame);
    });
  });
  aeWatchScheme(shared, "pending", function () { frames().forEach(tell); });
})();"""

#: The host page's half of an iframe embed: sizes every ``iframe.ae-frame`` to the height its page posts, hides
#: its loading line once it has drawn, and tells it the host's colours (then and whenever the host's scheme
#: changes). Installed once per page, whatever number of embeds carry it.
FRAME_HOST_JS = _without_blank_lines(
    _FRAME_HOST_TEMPLATE.replace("__BACKGROUND__", _BACKGROUND_JS).replace("__FRAME__", FRAME_CLASS)
)


def _is_colour(descriptor: Any) -> bool:
    if isinstance(descriptor, Color | ColorSpec):
        return True
    return isinstance(descriptor, Nullable) and _is_colour(descriptor.type_param)


def _dark(value: Any) -> Any:
    return DARK_COLOURS.get(value.lower(), value) if isinstance(value, str) else value


def colour_overrides(layout: LayoutDOM) -> list[list[Any]]:
    """``[model id, property, light value, dark value]`` for every colour of the layout that has a dark twin.

    Palettes (lists of colours) count too: the graph's node kinds are a palette.
    """
    overrides = []
    for model in layout.references():
        for name in sorted(model.properties()):
            descriptor = model.lookup(name).property
            palette = isinstance(model, ColorMapper) and name == "palette" and isinstance(descriptor, Seq)
            if not (palette or _is_colour(descriptor)):
                continue
            value = getattr(model, name)
            if palette:
                value, dark = list(value), [_dark(colour) for colour in value]
            elif isinstance(value, str):
                dark = _dark(value)
            else:
                continue
            if dark != value:
                overrides.append([model.id, name, value, dark])
    return overrides


def _follow_scheme(layout: LayoutDOM) -> None:
    """Give every UI model of the layout the stylesheet that takes Bokeh's surfaces from the block's scheme."""
    sheet = InlineStyleSheet(css=_BOKEH_SCHEME_CSS)
    for model in layout.references():
        if isinstance(model, UIElement):
            model.stylesheets = [*model.stylesheets, sheet]


def bundle_names(layout: Model) -> list[str]:
    """The BokehJS bundles the layout needs, in loading order: ``["bokeh", "bokeh-widgets", …]``."""
    bundle = bundle_for_objs_and_resources([layout], CDN)
    names = []
    for file in bundle.js_files:
        match = re.search(r"/(bokeh(?:-[a-z]+)?)-\d[^/]*\.js$", str(getattr(file, "url", file)))
        if match:
            names.append(match.group(1))
    return names


def cdn_url(name: str) -> str:
    return CDN.clone(components=[name]).js_files[0]


@lru_cache(maxsize=8)
def packed_bundle(name: str) -> str:
    """One BokehJS bundle as base64 of its gzip (about a quarter of its size; no blank line, no markup)."""
    [code] = [raw for raw in INLINE.clone(components=[name]).js_raw if not raw.startswith("Bokeh.set_log_level")]
    return base64.b64encode(gzip.compress(code.encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def page_scripts(layout: Model, *, inline: bool) -> str:
    """``<script>`` tags for a full page's ``<head>``: each bundle inlined, or loaded from the CDN."""
    names = bundle_names(layout)
    if not inline:
        return "\n".join(
            f'<script src="{html.escape(cdn_url(name))}" crossorigin="anonymous"></script>' for name in names
        )
    resources = INLINE.clone(components=names)
    return "\n".join(
        f"<script>\n{code}\n</script>" for code in resources.js_raw if not code.startswith("Bokeh.set_log_level")
    )


def json_script(data: Any, attributes: str) -> str:
    """Data as ``<script type="application/json">``, escaped so that no string in it can close the tag."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, sort_keys=True)
    text = text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" {attributes}>{text}</script>'


def figure_spec(layout: LayoutDOM, *, libraries: str) -> dict[str, Any]:
    """What the block's script needs to draw the layout: its document, root, bundles and dark colours."""
    _follow_scheme(layout)
    overrides = colour_overrides(layout)
    names = bundle_names(layout)
    with OutputDocumentFor([layout], apply_theme=None):
        docs_json, _ = standalone_docs_json_and_render_items([layout], suppress_callback_warning=True)
    [(docid, doc)] = docs_json.items()
    bundles = [{"name": name, **({"url": cdn_url(name)} if libraries == "cdn" else {})} for name in names]
    return {"docid": docid, "doc": doc, "root": layout.id, "bundles": bundles, "overrides": overrides}


def embed_block(layout: LayoutDOM, *, header: str, data: str = "", libraries: str = "page") -> str:
    """The block: scoped style, ``header`` (escaped HTML), the figure holder, its data, bundles and script.

    No line of it is blank, so Markdown engines keep it as one HTML block.
    """
    spec = figure_spec(layout, libraries=libraries)
    packed = "".join(
        f'<script type="text/plain" data-ae-bundle="{bundle["name"]}">{packed_bundle(bundle["name"])}</script>'
        for bundle in spec["bundles"]
        if libraries == "inline"
    )
    figure = json_script(serialize_json(spec), 'data-ae="figure"')
    parts = [
        f'<div class="{EMBED_CLASS}">',
        f"<style>{_EMBED_CSS}</style>",
        header,
        "<ae-figure></ae-figure>",
        '<ae-status role="status">The interactive figure draws here (it needs JavaScript).</ae-status>',
        data,
        figure,
        packed,
        f"<script>{RUNTIME_JS}</script>",
        "</div>",
    ]
    return "\n".join(part for part in parts if part)


def iframe_embed(page_html: str, *, title: str, script: bool = True, loading: str | None = None) -> str:
    """An ``<iframe srcdoc=…>`` holding a whole page, sized to it by :data:`FRAME_HOST_JS`.

    ``script`` adds that listener after the iframe (a host that strips scripts keeps the start height);
    ``loading`` shows a line above the frame until its page has drawn (the app's corpus report).
    """
    frame = (
        f'<iframe class="{FRAME_CLASS}" title="{html.escape(title)}" srcdoc="{html.escape(page_html, quote=True)}" '
        f'style="display: block; width: 100%; height: {FRAME_START_PX}px; border: 0" '
        'sandbox="allow-scripts allow-downloads"></iframe>'
    )
    if loading is not None:
        frame = (
            f'<div class="ae-frame-box"><p class="ae-frame-loading" role="status" '
            f'style="margin: 4px 0; font-style: italic">{html.escape(loading)}</p>{frame}</div>'
        )
    return f"{frame}\n<script>{FRAME_HOST_JS}</script>" if script else frame
