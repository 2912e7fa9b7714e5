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
