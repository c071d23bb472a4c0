from c100.models.registry import create_model, get_entry, list_models, register_model  # noqa: F401
