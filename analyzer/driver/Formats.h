// Machine-readable renderings of a run: a plain JSON document and SARIF 2.1.0 as
// GitHub code scanning ingests it.
#pragma once

#include "driver/Findings.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>

namespace asyncstate_tidy {

void writeJson(llvm::raw_ostream& Out, const std::vector<Finding>& Findings,
               std::optional<llvm::json::Value> MigrationReport);
void writeSarif(llvm::raw_ostream& Out, const std::vector<Finding>& Findings);

}  // namespace asyncstate_tidy
