"""Tests of ``exporters``: the Bokeh pages, the corpus report, the Hub push."""
