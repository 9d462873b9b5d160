# lit configuration for the analyzer tests. One suite, pointed by --param
# source_root at either fixtures/ (clang-tidy-style fixture tests, run once with
# the plugin and once with the driver) or tests/analyzer/driver/ (driver-only tests).
import os
import shlex

import lit.formats

params = lit_config.params
config.name = "asyncstate-analyzer-" + params.get("suite", "fixtures")
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".cpp", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = params["source_root"]
config.test_exec_root = params["exec_root"]
config.environment["PATH"] = os.environ.get("PATH", "")
config.environment["LC_ALL"] = "C"

here = os.path.dirname(os.path.abspath(__file__))
tool = params.get("tool", "driver")
tools = {
    "clang_tidy": params["clang_tidy"],
    "plugin": params["plugin"],
    "driver": params["driver"],
    "filecheck": params["filecheck"],
    "cxx": params["cxx"],
    "include": params["include"],
    "pch": params.get("pch", ""),
}
check_tidy = [params["python"], os.path.join(here, "check_tidy.py"), f"--tool={tool}"]
check_tidy += [f"--{name.replace('_', '-')}={value}" for name, value in tools.items()]
config.substitutions.append(("%check_tidy", shlex.join(check_tidy)))
config.substitutions.append(("%asyncstate_tidy", shlex.quote(params["driver"])))
config.substitutions.append(("%clang_tidy_plugin", shlex.join([params["clang_tidy"], "-load=" + params["plugin"]])))
config.substitutions.append(("%FileCheck", shlex.quote(params["filecheck"])))
config.substitutions.append(("%python", shlex.quote(params["python"])))
config.substitutions.append(("%cxx", shlex.quote(params["cxx"])))
config.substitutions.append(("%include", shlex.quote(params["include"])))
config.substitutions.append(("%fixtures", shlex.quote(params["fixtures"])))
config.substitutions.append(("%tests", shlex.quote(here)))
# Compiler arguments that load the precompiled umbrella header: most of a driver run is
# parsing that header, and what a test checks does not depend on how it was parsed.
pch_args = ["-include-pch", params["pch"]] if params.get("pch") else []
config.substitutions.append(("%pch_json", repr(pch_args)))
config.substitutions.append(("%pch", shlex.join(pch_args)))
