// Machine-readable renderings of a run: a plain JSON document and SARIF 2.1.0 as
// GitHub code scanning ingests it.
#pragma once

#include "driver/Baseline.h"
#include "driver/Findings.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>

namespace asyncstate_tidy {

// The outcome of comparing a run with its baseline, for the renderings.
struct BaselineOutcome {
  std::string Root;  // the directory baseline paths are relative to
  BaselineComparison Comparison;
};

// Findings a baseline holds (BaselineState::Unchanged) are left out of text and JSON;
// SARIF keeps them as suppressed "unchanged" results and adds the "absent" ones.
void writeText(llvm::raw_ostream& Out, const std::vector<Finding>& Findings);
void writeJson(llvm::raw_ostream& Out, const std::vector<Finding>& Findings,
               std::optional<llvm::json::Value> MigrationReport, const BaselineOutcome* Baseline);
void writeSarif(llvm::raw_ostream& Out, const std::vector<Finding>& Findings, const BaselineOutcome* Baseline);

// A path relative to the working directory when it lies below it, as compilers print it.
std::string displayPath(const std::string& File);

}  // namespace asyncstate_tidy
