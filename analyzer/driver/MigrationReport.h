// "Is this UDF ready for async state?" per class, from the run's findings.
#pragma once

#include "driver/Findings.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

namespace asyncstate_tidy {

struct ReportedClass {
  const clang::tidy::asyncstate::UdfClassRecord* Class;
  std::vector<const Finding*> Blockers;  // sync access, raw future, blocking call
  std::vector<const Finding*> Other;     // asyncstate findings that do not block migration
};

struct MigrationReport {
  std::vector<ReportedClass> Classes;
  std::vector<const Finding*> Unattributed;  // async code outside any UDF class

  MigrationReport(const Inventory& Udfs, const std::vector<Finding>& Findings);
  void print(llvm::raw_ostream& Out) const;
  llvm::json::Value toJson() const;
};

}  // namespace asyncstate_tidy
