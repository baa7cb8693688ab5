"""Command-line tools run as ``python -m lit_vision.tools.<name>`` (dataset preparation and inspection)."""
