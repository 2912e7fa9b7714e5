"""The app's tabs, one module each, pairing the tab's layout (``build(page)``) with its handlers.

Handlers are module-level functions of widget values that return plain data (``run_attribution``,
``run_graph``, ``make_export``…): the tests call them without a browser. ``build(page)`` lays out the
widgets inside the app's ``gr.Tabs`` and connects them, through :mod:`space.gradio_app.wiring`, to
endpoints that call those handlers. Sections of a tab that have their own job have their own module:
the graph tab's selection details (:mod:`.graph_selection`) and ablation (:mod:`.ablate`), the Compare
tab's corpus upload (:mod:`.corpus`). Which tabs the app shows, in order: ``TABS`` in
:mod:`space.gradio_app.build`.
"""
