"""Active-learning pipeline: ``model`` + ``train/val_crystals`` -> rounds of generate, relax, label, select and
fine-tune -> ``active_learning_model``, the grown training store, each round's additions and the report.

Registered by :func:`pipelines.pipeline_registry.register_pipelines` but not part of ``__default__``: it runs
only when asked for (``kedro run --pipelines=active_learning``, ``make active-learning-demo``).
"""

from kedro.pipeline import Pipeline, node

from pipelines.active_learning.nodes import active_learning_plots, run_active_learning


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                run_active_learning,
                inputs=[
                    "model",
                    "train_crystals",
                    "val_crystals",
                    "params:model_config",
                    "params:physics_config",
                    "params:training_config",
                    "params:train_options",
                    "params:generate_options",
                    "params:relax_options",
                    "params:label_options",
                    "params:verify_options",
                    "params:active_learning_options",
                ],
                outputs=[
                    "active_learning_model",
                    "active_learning_train_crystals",
                    "active_learning_additions",
                    "active_learning_report",
                ],
                name="run_active_learning_node",
            ),
            node(
                active_learning_plots,
                inputs="active_learning_report",
                outputs=["active_learning_yield_plot", "active_learning_scores_plot", "active_learning_classes_plot"],
                name="active_learning_plots_node",
            ),
        ]
    )
