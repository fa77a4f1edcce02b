"""The README and deploy files must stay true to the code they describe."""

import re
from pathlib import Path

from kyma_video import search_attributes
from kyma_video.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
#: Variables only the test suite reads (documented in the README's Quick start).
TEST_ONLY = {"KYMA_TEST_POSTGRES_URL", "KYMA_REQUIRE_POSTGRES"}


def setting_variables() -> set[str]:
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def test_the_configuration_table_lists_every_setting_and_nothing_else():
    table = set(re.findall(r"^\| `(KYMA_[A-Z0-9_]+)`", README, flags=re.MULTILINE))
    assert table == setting_variables()


def test_every_variable_the_readme_mentions_exists():
    mentioned = set(re.findall(r"\bKYMA_[A-Z0-9_]+\b", README)) - TEST_ONLY
    assert mentioned <= setting_variables()


def test_the_deploy_script_registers_exactly_the_search_attributes_the_workflow_sets():
    script = (ROOT / "deploy" / "temporal" / "register-search-attributes.sh").read_text()
    listed = re.search(r"ATTRIBUTES=\(([^)]*)\)", script)
    assert listed is not None
    assert set(listed.group(1).split()) == {key.name for key in search_attributes.ALL}
