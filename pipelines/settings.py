"""Kedro project settings (https://docs.kedro.org/en/stable/kedro_project_setup/settings.html)."""

from kedro.config import OmegaConfigLoader

from pipelines.hooks import MissingInputsHook

#: Checks, before any node runs, that the inputs of the selected pipelines exist on disk and, when
#: they do not, names the pipeline to run first.
HOOKS = (MissingInputsHook(),)

CONF_SOURCE = "conf"
CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"parameters": ["parameters*", "parameters*/**", "**/parameters*"]},
}
