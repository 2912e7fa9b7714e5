"""What a contribution-graph figure shows in a browser, read from its Bokeh views (exported page or the app).

``page.evaluate(GRAPH_GEOMETRY_JS, selector)`` describes the graph figure drawn under ``selector`` (``None``:
anywhere, for an exported page): how wide a token column is drawn, whether its panel scrolls it sideways, and where
the right-most prediction written above the roots ends against the plot frame's right edge.
"""

from __future__ import annotations

GRAPH_GEOMETRY_JS = """
(selector) => {
  const container = selector === null ? null : document.querySelector(selector);
  let plot = null;
  const visit = (view) => {
    if (view.model.name === 'contribution graph') plot = view;
    for (const child of view.child_views ?? []) visit(child);
  };
  [...Bokeh.index].filter((view) => container === null || container.contains(view.el)).forEach(visit);
  const scale = plot.frame.x_scale;
  const scroller = plot.parent.el;
  const value = (spec) => (spec !== null && typeof spec === 'object' ? spec.value : spec);
  const labels = [...plot.renderer_views.values()].find((view) => view.model.type === 'LabelSet');
  let right = null;
  let texts = [];
  if (labels) {
    const data = labels.model.source.data;
    texts = [...data.text];
    const last = [...data.x.keys()].reduce((a, b) => (data.x[b] > data.x[a] ? b : a));
    const measure = document.createElement('canvas').getContext('2d');
    measure.font = `bold ${value(labels.model.text_font_size)} helvetica, arial, sans-serif`;
    const width = measure.measureText(data.text[last]).width;
    const angle = value(labels.model.angle);
    const start = scale.compute(data.x[last]) + value(labels.model.x_offset);
    right = value(labels.model.text_align) === 'right' ? start : start + width * Math.cos(angle);
  }
  return {
    column: scale.compute(1) - scale.compute(0),
    scrollWidth: scroller.scrollWidth,
    clientWidth: scroller.clientWidth,
    predictionRight: right,
    frameRight: plot.frame.bbox.right,
    predictions: texts,
  };
}
"""

# Page coordinates of node `id` in the graph figure (named `figure`) under `selector`, after scrolling the page
# and the figure's own panel (a wide figure scrolls sideways in it) so that the node is in view.
NODE_POINT_JS = """
([selector, id, figure]) => {
  const container = document.querySelector(selector);
  let plot = null;
  const visit = (view) => {
    if (view.model.name === (figure ?? 'contribution graph')) plot = view;
    for (const child of view.child_views ?? []) visit(child);
  };
  [...Bokeh.index].filter((view) => container.contains(view.el)).forEach(visit);
  const nodes = plot.model.document.get_model_by_name('nodes');
  const i = nodes.data.id.indexOf(id);
  const x = plot.frame.x_scale.compute(nodes.data.x[i]);
  const scroller = plot.parent.el;
  scroller.scrollLeft = Math.max(0, x - scroller.clientWidth / 2);
  plot.el.scrollIntoView({block: 'center'});
  const box = plot.el.getBoundingClientRect();
  return [box.left + x, box.top + plot.frame.y_scale.compute(nodes.data.y[i])];
}
"""

# The edge keys each graph figure under `selector` marks as changed (its "highlighted edges" filter), in drawing
# order: for a before / after figure, [before's, after's].
HIGHLIGHTED_EDGES_JS = """
(selector) => {
  const container = document.querySelector(selector);
  const docs = new Set([...Bokeh.index].filter((view) => container.contains(view.el)).map((v) => v.model.document));
  const marked = [];
  for (const doc of docs) {
    for (const filter of [...doc.all_models].filter((m) => m.name === 'highlighted edges')) {
      const view = [...doc.all_models].find((m) => m.type === 'CDSView' && m.filter === filter);
      const renderer = [...doc.all_models].find((m) => m.type === 'GlyphRenderer' && m.view === view);
      const edges = renderer.data_source.data;
      const plot = [...doc.all_models].find((m) => m.type === 'Figure' && m.renderers.includes(renderer));
      const nodes = [...doc.all_models].find(
        (m) => m.name === 'nodes' && plot.renderers.some((r) => r.data_source === m)).data;
      const kinds = ['attention', 'cross_attention', 'residual', 'ffn'];
      marked.push([...filter.indices].map((e) => {
        const ends = `${nodes.id[edges.source_node[e]]}->${nodes.id[edges.target_node[e]]}`;
        const kind = kinds[edges.kind[e]];
        return kind === 'attention' || kind === 'cross_attention' ? ends : `${ends}#${kind}`;
      }));
    }
  }
  return marked;
}
"""

# Page coordinates of data point (x, y) of the figure named `figure` under `selector`, after scrolling the page
# and the figure's panel so that it is in view.
DATA_POINT_JS = """
([selector, figure, x, y]) => {
  const container = document.querySelector(selector);
  let plot = null;
  const visit = (view) => {
    if (view.model.name === figure) plot = view;
    for (const child of view.child_views ?? []) visit(child);
  };
  [...Bokeh.index].filter((view) => container.contains(view.el)).forEach(visit);
  const sx = plot.frame.x_scale.compute(x);
  const scroller = plot.parent.el;
  scroller.scrollLeft = Math.max(0, sx - scroller.clientWidth / 2);
  plot.el.scrollIntoView({block: 'center'});
  const box = plot.el.getBoundingClientRect();
  return [box.left + sx, box.top + plot.frame.y_scale.compute(y)];
}
"""
