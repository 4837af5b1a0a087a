"""Plugins for hyperparameter-tuning services (installed as ``lrtune.integrations``)."""
