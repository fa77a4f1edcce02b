"""The ``kyma-video`` command: one entry point for operators, developers and containers."""

import typer

from kyma_video.settings import Settings


def settings_help() -> str:
    """Every setting as ``KYMA_NAME (default): description``, for ``--help``."""
    prefix = Settings.model_config.get("env_prefix", "")
    lines = ["Settings (environment variables, the same for every command):", ""]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "-" if default is None else str(getattr(default, "value", default))
        lines.append(f"{prefix}{name.upper()} [{shown}]: {field.description or ''}")
        lines.append("")
    return "\n\n".join(lines)


app = typer.Typer(
    name="kyma-video",
    help="Temporal-orchestrated job runner for AI video generation.",
    epilog=settings_help(),
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
    pretty_exceptions_show_locals=False,
)
keys = typer.Typer(help="Accounts and their API keys.", no_args_is_help=True)
balance = typer.Typer(help="Account balances.", no_args_is_help=True)
jobs = typer.Typer(help="Read jobs through the API.", no_args_is_help=True)
app.add_typer(keys, name="keys")
app.add_typer(balance, name="balance")
app.add_typer(jobs, name="jobs")
