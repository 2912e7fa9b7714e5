"""The model's anatomy: named sites of every supported family, and one way to read and edit them.

Nothing outside this package knows a module path. The contribution graph's capture, the interventions'
hooks and the cost model all go through it:

- :mod:`~attribution.anatomy.adapters`: each family's description (where its layers, attentions,
  projections and norms are) and the live view of a loaded model it gives (``architecture_spec``);
- :mod:`~attribution.anatomy.sites`: the names, ``decoder.3.attn.probs`` (TransformerLens-style);
- :mod:`~attribution.anatomy.places`: where each name is in a family's modules (getter, setter);
- :mod:`~attribution.anatomy.hooks`: ``hooked(spec, {site: function})``, observe and edit in a pass;
- :mod:`~attribution.anatomy.replay`: run one block again with its recorded arguments, read logits out;
- :mod:`~attribution.anatomy.shape`: layers, heads, widths and tokens; what a resumed row costs;
- :mod:`~attribution.anatomy.inputs`: the token ids a model reads for a text (``prepare_inputs``).

Submodules are imported where used: ``sites`` and ``shape`` load without torch.
"""
