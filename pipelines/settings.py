"""Kedro project settings (https://docs.kedro.org/en/stable/kedro_project_setup/settings.html)."""

from kedro.config import OmegaConfigLoader

from pipelines.hooks import MissingInputsHook, RetiredParametersHook, UserCrystalsHook

#: Before any node runs: a parameter block of an earlier release is refused; the ``user_crystals`` dataset is
#: pointed at ``data_config.path``; then the inputs of the selected pipelines must exist on disk, and when they
#: do not the hook names the pipeline to run first.
HOOKS = (RetiredParametersHook(), UserCrystalsHook(), MissingInputsHook())

CONF_SOURCE = "conf"
CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"parameters": ["parameters*", "parameters*/**", "**/parameters*"]},
}
