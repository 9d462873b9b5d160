#include "driver/MigrationReport.h"

#include "driver/Formats.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"

namespace asyncstate_tidy {

namespace {

bool blocksMigration(llvm::StringRef Check) {
  return Check == "asyncstate-sync-state-access" || Check == "asyncstate-raw-future" ||
         Check == "asyncstate-blocking-callback";
}

// The report's label for a finding; a check without one (added later) shows its own
// name rather than another check's label.
llvm::StringRef reason(llvm::StringRef Check) {
  return llvm::StringSwitch<llvm::StringRef>(Check)
      .Case("asyncstate-sync-state-access", "sync access")
      .Case("asyncstate-raw-future", "raw future")
      .Case("asyncstate-blocking-callback", "blocking call")
      .Case("asyncstate-swallowed-exception", "swallowed error")
      .Case("asyncstate-dangling-capture", "dangling capture")
      .Case("asyncstate-dangling-coroutine-reference", "dangling coroutine reference")
      .Case("asyncstate-member-scratch-across-suspension", "member scratch across suspension")
      .Case("asyncstate-mixed-state-access", "mixed sync/async state access")
      .Default(Check);
}

constexpr llvm::StringLiteral NotMigratedNote = "not migrated automatically: ";

// Why --fix leaves a finding to the user ("" when --fix rewrites it).
std::string manualReason(const Finding& F) {
  if (!F.Fixes.empty()) return "";
  for (const Note& N : F.Notes)
    if (llvm::StringRef(N.Message).starts_with(NotMigratedNote)) return N.Message.substr(NotMigratedNote.size());
  return F.Check == "asyncstate-sync-state-access" ? "no mechanical rewrite" : "needs a design change";
}

// What --fix does about a blocker, for the report's lines.
std::string fixStatus(const Finding& F) {
  const std::string Reason = manualReason(F);
  return Reason.empty() ? " [--fix migrates it]" : " [by hand: " + Reason + "]";
}

bool contains(const clang::tidy::asyncstate::UdfClassRecord& Class, const Finding& F) {
  for (const auto& [File, Range] : Class.Ranges)
    if (File == F.File && Range.first <= F.Offset && F.Offset <= Range.second) return true;
  return false;
}

std::string where(const Finding& F) {
  return displayPath(F.File) + ":" + std::to_string(F.At.Line) + ":" + std::to_string(F.At.Column);
}

llvm::json::Array findingsJson(const std::vector<const Finding*>& Findings) {
  llvm::json::Array Result;
  for (const Finding* F : Findings)
    Result.push_back(llvm::json::Object{{"kind", reason(F->Check).str()},
                                        {"check", F->Check},
                                        {"file", F->File},
                                        {"line", static_cast<int64_t>(F->At.Line)},
                                        {"column", static_cast<int64_t>(F->At.Column)},
                                        {"message", F->Message},
                                        {"fixedByMigration", manualReason(*F).empty()},
                                        {"manualReason", manualReason(*F)}});
  return Result;
}

}  // namespace

MigrationReport::MigrationReport(const Inventory& Udfs, const std::vector<Finding>& Findings) {
  // Classes in headers count when their diagnostics are shown, as clang-tidy decides.
  for (const auto& Class : Udfs.classes())
    if (Class.Reported) Classes.push_back({&Class, {}, {}});
  for (const Finding& F : Findings) {
    if (!llvm::StringRef(F.Check).starts_with("asyncstate-")) continue;
    ReportedClass* Owner = nullptr;
    for (ReportedClass& Candidate : Classes)
      if (contains(*Candidate.Class, F)) Owner = &Candidate;
    if (!Owner) {
      if (blocksMigration(F.Check)) Unattributed.push_back(&F);
      continue;
    }
    (blocksMigration(F.Check) ? Owner->Blockers : Owner->Other).push_back(&F);
  }
}

void MigrationReport::print(llvm::raw_ostream& Out) const {
  Out << "\nasyncstate migration report\n";
  unsigned Ready = 0, Sync = 0, Raw = 0, Blocking = 0, Automatic = 0;
  auto count = [&](const Finding* F) {
    Sync += F->Check == "asyncstate-sync-state-access";
    Raw += F->Check == "asyncstate-raw-future";
    Blocking += F->Check == "asyncstate-blocking-callback";
    Automatic += manualReason(*F).empty();
  };
  for (const ReportedClass& C : Classes) {
    const bool IsReady = C.Blockers.empty();
    Ready += IsReady;
    Out << "  " << C.Class->Name << " (" << displayPath(C.Class->File) << ":" << C.Class->Line
        << "): async-ready: " << (IsReady ? "yes" : "no") << "\n";
    for (const Finding* F : C.Blockers) {
      count(F);
      Out << "    - " << reason(F->Check) << " at " << where(*F) << ": " << F->Message << fixStatus(*F) << "\n";
    }
    for (const Finding* F : C.Other)
      Out << "    ~ " << reason(F->Check) << " at " << where(*F) << " (does not block migration): " << F->Message
          << "\n";
  }
  if (!Unattributed.empty()) {
    Out << "  outside UDF classes:\n";
    for (const Finding* F : Unattributed) {
      count(F);
      Out << "    - " << reason(F->Check) << " at " << where(*F) << ": " << F->Message << fixStatus(*F) << "\n";
    }
  }
  if (Classes.empty()) Out << "  (no UDF classes found)\n";
  Out << "summary: " << Classes.size() << " UDF class" << (Classes.size() == 1 ? "" : "es") << ", " << Ready
      << " async-ready, " << Classes.size() - Ready << " not async-ready; " << Sync << " sync state access"
      << (Sync == 1 ? "" : "es") << ", " << Raw << " raw future" << (Raw == 1 ? "" : "s") << ", " << Blocking
      << " blocking call" << (Blocking == 1 ? "" : "s") << "\n";
  const unsigned Blockers = Sync + Raw + Blocking;
  if (Blockers > 0)
    Out << "migration: --fix rewrites " << Automatic << " of " << Blockers << "; " << Blockers - Automatic
        << " need a change by hand (reasons above)\n";
}

llvm::json::Value MigrationReport::toJson() const {
  llvm::json::Array List;
  int64_t Ready = 0;
  for (const ReportedClass& C : Classes) {
    Ready += C.Blockers.empty();
    List.push_back(llvm::json::Object{{"class", C.Class->Name},
                                      {"file", C.Class->File},
                                      {"line", static_cast<int64_t>(C.Class->Line)},
                                      {"asyncReady", C.Blockers.empty()},
                                      {"blockers", findingsJson(C.Blockers)},
                                      {"other", findingsJson(C.Other)}});
  }
  return llvm::json::Object{
      {"classes", std::move(List)},
      {"outsideUdfClasses", findingsJson(Unattributed)},
      {"summary", llvm::json::Object{{"classes", static_cast<int64_t>(Classes.size())},
                                     {"asyncReady", Ready},
                                     {"notReady", static_cast<int64_t>(Classes.size()) - Ready}}}};
}

}  // namespace asyncstate_tidy
