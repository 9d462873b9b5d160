#!/usr/bin/env python3
"""Structural validation of a SARIF 2.1.0 log against what GitHub code scanning
requires (https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning):
version and $schema, one run with tool.driver.name and rules, results whose
ruleId/ruleIndex resolve, 1-based regions, relative URIs with a base id, and
well-formed fixes.

usage: validate_sarif.py <file.sarif> [--min-results N] [--expect-rule ID ...]
"""
import argparse
import json
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sarif")
    parser.add_argument("--min-results", type=int, default=0)
    parser.add_argument("--expect-rule", action="append", default=[])
    args = parser.parse_args()
    errors = []

    def need(condition, message):
        if not condition:
            errors.append(message)

    with open(args.sarif, encoding="utf-8") as f:
        log = json.load(f)
    need(log.get("version") == "2.1.0", "version must be 2.1.0")
    need("sarif" in log.get("$schema", ""), "$schema must name the SARIF schema")
    runs = log.get("runs", [])
    need(len(runs) == 1, "exactly one run expected")
    run = runs[0] if runs else {}
    driver = run.get("tool", {}).get("driver", {})
    need(bool(driver.get("name")), "tool.driver.name is required")
    rules = driver.get("rules", [])
    ids = [rule.get("id") for rule in rules]
    need(len(ids) == len(set(ids)), "rule ids must be unique")
    for rule in rules:
        need(bool(rule.get("id")), "every rule needs an id")
        need(bool(rule.get("shortDescription", {}).get("text")), f"rule {rule.get('id')}: shortDescription.text")
        need(bool(rule.get("help", {}).get("text")), f"rule {rule.get('id')}: help.text")
    base_ids = run.get("originalUriBaseIds", {})
    results = run.get("results", [])
    need(len(results) >= args.min_results, f"expected at least {args.min_results} results, got {len(results)}")
    for i, result in enumerate(results):
        where = f"results[{i}]"
        rule_id = result.get("ruleId")
        need(rule_id in ids, f"{where}: ruleId {rule_id!r} is not among the rules")
        index = result.get("ruleIndex")
        need(isinstance(index, int) and 0 <= index < len(rules) and rules[index].get("id") == rule_id,
             f"{where}: ruleIndex does not point at its rule")
        need(result.get("level") in ("error", "warning", "note", "none"), f"{where}: level")
        need(bool(result.get("message", {}).get("text")), f"{where}: message.text")
        for location in result.get("locations", []):
            physical = location.get("physicalLocation", {})
            artifact = physical.get("artifactLocation", {})
            uri = artifact.get("uri", "")
            need(bool(uri), f"{where}: artifactLocation.uri")
            if not uri.startswith("file://"):
                need(artifact.get("uriBaseId") in base_ids, f"{where}: relative uri needs a known uriBaseId")
            # A region is optional (an "absent" baseline result names only its file).
            if "region" in physical or result.get("baselineState") != "absent":
                region = physical.get("region", {})
                need(region.get("startLine", 0) >= 1 and region.get("startColumn", 0) >= 1,
                     f"{where}: region is 1-based")
        need(result.get("baselineState", "new") in ("new", "unchanged", "updated", "absent"), f"{where}: baselineState")
        for name, value in result.get("partialFingerprints", {}).items():
            need(isinstance(value, str) and bool(value), f"{where}: partialFingerprints[{name!r}]")
        for fix in result.get("fixes", []):
            need(bool(fix.get("artifactChanges")), f"{where}: fix without artifactChanges")
            for change in fix.get("artifactChanges", []):
                need(bool(change.get("artifactLocation", {}).get("uri")), f"{where}: fix artifactLocation.uri")
                for replacement in change.get("replacements", []):
                    region = replacement.get("deletedRegion", {})
                    need(region.get("startLine", 0) >= 1, f"{where}: deletedRegion.startLine")
                    need("text" in replacement.get("insertedContent", {}), f"{where}: insertedContent.text")
    for rule in args.expect_rule:
        need(any(r.get("ruleId") == rule for r in results), f"no result for rule {rule}")
    if errors:
        print("\n".join(errors))
        return 1
    print(f"valid SARIF 2.1.0: {len(results)} results, {len(rules)} rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
