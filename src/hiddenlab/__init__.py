"""hiddenlab: studies of networks trained by selecting fixed random weights.

Sub-packages (each a folder at the repository root): `hiddenlab.models` (selection layers, model
families, inits), `hiddenlab.data` (data sets and loaders), `hiddenlab.study` (trial config, the
trainer, Ray Tune studies) and `hiddenlab.analysis` (figures, tables, report).
"""

__version__ = "0.1.0"
