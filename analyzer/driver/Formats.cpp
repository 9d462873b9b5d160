#include "driver/Formats.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"

#include <map>

namespace asyncstate_tidy {

namespace {

using llvm::json::Array;
using llvm::json::Object;
using llvm::json::Value;

struct RuleText {
  const char* Id;
  const char* Short;
  const char* Help;
};

// Help shown by code scanning next to each alert; the full pages are docs/checks/.
const RuleText Rules[] = {
    {"asyncstate-sync-state-access", "Blocking state access in async UDF code",
     "A synchronous state method (value(), update(), get(), put(), ...), a function annotated "
     "asyncstate::blocking, or a wait on a future blocks the task thread until the backend answers; with remote "
     "state that is 1-10 ms per record. Use the async method the message names (asyncValue(), asyncUpdate(), ...) "
     "and chain a continuation or co_await the future."},
    {"asyncstate-raw-future", "Raw std::future/promise or heap-allocated state future in UDF code",
     "std::future, std::shared_future, std::promise, std::packaged_task and std::async bypass the controller: "
     "they are not pooled, not ordered per key, not drained at checkpoints, and their failures never reach the "
     "error handler. A std::promise per record is a memory leak waiting to happen. Use asyncstate::StateFuture by "
     "value."},
    {"asyncstate-swallowed-exception", "Error path that drops the error",
     "Every failure must reach exactly one place: a downstream exceptionally()/handle() or the controller's "
     "error handler. An empty or non-reporting catch in a continuation, an exceptionally()/handle() callback "
     "that never looks at its error, or an error handler that ignores the error and continues makes failures "
     "vanish. Inspect, report or rethrow the error."},
    {"asyncstate-dangling-capture", "Continuation captures a local or parameter by reference",
     "Continuations run after the function that registered them returned, so references to its locals and "
     "parameters dangle. Capture by value or move into the lambda; members through this and objects with "
     "static storage are fine, and so is a chain that is co_await-ed immediately."},
    {"asyncstate-blocking-callback", "Blocking call inside a continuation or a per-record member of an async UDF",
     "Continuations run on the task thread that owns the controller, and so do processElement() and onTimer(); "
     "a sleep, lock or condition-variable wait, future wait or blocking I/O call there stalls every record "
     "behind it. Issue an async state request or move the work off the task thread."},
    {"asyncstate-dangling-coroutine-reference", "Coroutine reads a reference its caller already destroyed",
     "A coroutine keeps its reference and view parameters, not copies: a temporary (or a local of a function "
     "that returns right away) bound to one is gone when the coroutine resumes after a co_await. The same holds "
     "for the captures of a coroutine lambda, which live in the closure. Take such parameters by value, pass "
     "captures as parameters, or co_await the call in the statement that makes it."},
};

const RuleText* findRule(llvm::StringRef Id) {
  for (const RuleText& Rule : Rules)
    if (Id == Rule.Id) return &Rule;
  return nullptr;
}

Object position(const std::string& File, unsigned Offset, Position At) {
  return Object{{"file", File},
                {"offset", static_cast<int64_t>(Offset)},
                {"line", static_cast<int64_t>(At.Line)},
                {"column", static_cast<int64_t>(At.Column)}};
}

// Paths under the working directory become relative to %SRCROOT%, which is how
// code scanning maps results onto the repository checkout.
class UriMaker {
 public:
  UriMaker() {
    llvm::SmallString<256> Cwd;
    if (!llvm::sys::fs::current_path(Cwd)) Root = canonicalPath(std::string(Cwd));
  }

  Object location(const std::string& File) const {
    llvm::StringRef Path(File);
    if (!Root.empty() && Path.consume_front(Root) && Path.consume_front("/"))
      return Object{{"uri", encode(Path)}, {"uriBaseId", "%SRCROOT%"}};
    return Object{{"uri", "file://" + encode(File)}};
  }
  std::string rootUri() const { return "file://" + encode(Root) + "/"; }

 private:
  static std::string encode(llvm::StringRef Path) {
    std::string Result;
    for (const char C : Path) {
      if (llvm::isAlnum(C) || llvm::StringRef("/-_.~").contains(C)) {
        Result += C;
      } else {
        Result += '%';
        Result += llvm::hexdigit((static_cast<unsigned char>(C) >> 4) & 0xF);
        Result += llvm::hexdigit(static_cast<unsigned char>(C) & 0xF);
      }
    }
    return Result;
  }

  std::string Root;
};

// SARIF columns count UTF-16 code units (the run's columnKind), not bytes.
Object region(Position Begin, std::optional<Position> End = std::nullopt) {
  Object Region{{"startLine", static_cast<int64_t>(std::max(1u, Begin.Line))},
                {"startColumn", static_cast<int64_t>(std::max(1u, Begin.Utf16Column))}};
  if (End) {
    Region["endLine"] = static_cast<int64_t>(std::max(1u, End->Line));
    Region["endColumn"] = static_cast<int64_t>(std::max(1u, End->Utf16Column));
  }
  return Region;
}

const char* baselineState(BaselineState State) {
  switch (State) {
    case BaselineState::New: return "new";
    case BaselineState::Unchanged: return "unchanged";
    case BaselineState::Absent: return "absent";
    case BaselineState::None: break;
  }
  return "";
}

// Columns in code points, so the caret lands under the flagged character.
std::string caretLine(llvm::StringRef Line, unsigned ByteColumn) {
  std::string Caret;
  const llvm::StringRef Before = Line.take_front(ByteColumn > 0 ? ByteColumn - 1 : 0);
  for (const char C : Before)
    if ((static_cast<unsigned char>(C) & 0xC0) != 0x80) Caret += C == '\t' ? '\t' : ' ';
  return Caret + "^";
}

}  // namespace

std::string displayPath(const std::string& File) {
  llvm::SmallString<256> Cwd;
  if (llvm::sys::fs::current_path(Cwd)) return File;
  llvm::StringRef Path(File);
  const std::string Root = canonicalPath(std::string(Cwd));
  if (Path.consume_front(Root) && Path.consume_front("/")) return Path.str();
  return File;
}

void writeText(llvm::raw_ostream& Out, const std::vector<Finding>& Findings) {
  for (const Finding& F : Findings) {
    if (F.State == BaselineState::Unchanged) continue;
    const char* Level = F.IsError ? "error" : "warning";
    if (F.File.empty()) {
      Out << Level << ": " << F.Message << " [" << F.Check << "]\n";
      continue;
    }
    Out << displayPath(F.File) << ":" << F.At.Line << ":" << F.At.Column << ": " << Level << ": " << F.Message << " ["
        << F.Check << "]\n";
    if (F.At.Line > 0) Out << F.LineText << "\n" << caretLine(F.LineText, F.At.Column) << "\n";
    for (const Note& N : F.Notes) {
      if (!N.File.empty()) Out << displayPath(N.File) << ":" << N.At.Line << ":" << N.At.Column << ": ";
      Out << "note: " << N.Message << "\n";
    }
  }
}

void writeJson(llvm::raw_ostream& Out, const std::vector<Finding>& Findings,
               std::optional<llvm::json::Value> MigrationReport, const BaselineOutcome* Baseline) {
  Array Diagnostics;
  int64_t Errors = 0, Reported = 0;
  for (const Finding& F : Findings) {
    if (F.State == BaselineState::Unchanged) continue;
    ++Reported;
    Array Fixes;
    for (const Edit& E : F.Fixes) {
      Object Fix = position(E.File, E.Offset, E.Begin);
      Fix["length"] = static_cast<int64_t>(E.Length);
      Fix["replacement"] = E.Text;
      Fixes.push_back(std::move(Fix));
    }
    Object D = position(F.File, F.Offset, F.At);
    D["check"] = F.Check;
    D["level"] = F.IsError ? "error" : "warning";
    D["message"] = F.Message;
    D["fixes"] = std::move(Fixes);
    D["fingerprint"] = F.Fingerprint;
    Errors += F.IsError;
    Diagnostics.push_back(std::move(D));
  }
  Object Summary{{"warnings", Reported - Errors}, {"errors", Errors}};
  if (Baseline)
    Summary["baseline"] = Object{{"new", static_cast<int64_t>(Baseline->Comparison.New)},
                                 {"unchanged", static_cast<int64_t>(Baseline->Comparison.Unchanged)},
                                 {"absent", static_cast<int64_t>(Baseline->Comparison.Absent.size())}};
  Object Document{{"tool", "asyncstate-tidy"},
                  {"version", ASYNCSTATE_TIDY_VERSION},
                  {"diagnostics", std::move(Diagnostics)},
                  {"summary", std::move(Summary)}};
  if (MigrationReport) Document["migrationReport"] = std::move(*MigrationReport);
  Out << llvm::formatv("{0:2}", Value(std::move(Document))) << "\n";
}

void writeSarif(llvm::raw_ostream& Out, const std::vector<Finding>& Findings, const BaselineOutcome* Baseline) {
  const UriMaker Uris;
  Array RuleList;
  std::map<std::string, int64_t> RuleIndex;
  auto ruleFor = [&](const std::string& Id) {
    auto [It, Inserted] = RuleIndex.try_emplace(Id, static_cast<int64_t>(RuleList.size()));
    if (!Inserted) return It->second;
    Object Rule{{"id", Id}, {"name", Id}};
    if (const RuleText* Text = findRule(Id)) {
      Rule["shortDescription"] = Object{{"text", Text->Short}};
      Rule["fullDescription"] = Object{{"text", Text->Help}};
      Rule["help"] = Object{{"text", Text->Help},
                            {"markdown", std::string(Text->Help) + "\n\nSee `docs/checks/" +
                                             llvm::StringRef(Id).drop_front(11).str() + ".md`."}};
      Rule["defaultConfiguration"] = Object{{"level", "warning"}};
      Rule["properties"] = Object{{"tags", Array{"asyncstate", "correctness"}}};
    } else {
      Rule["shortDescription"] = Object{{"text", Id}};
      Rule["help"] = Object{{"text", "clang-tidy diagnostic " + Id}};
    }
    RuleList.push_back(std::move(Rule));
    return It->second;
  };

  Array Results;
  for (const Finding& F : Findings) {
    Object Result{{"ruleId", F.Check},
                  {"ruleIndex", ruleFor(F.Check)},
                  {"level", F.IsError ? "error" : "warning"},
                  {"message", Object{{"text", F.Message}}}};
    if (!F.File.empty())
      Result["locations"] = Array{
          Object{{"physicalLocation", Object{{"artifactLocation", Uris.location(F.File)}, {"region", region(F.At)}}}}};
    if (!F.Fixes.empty()) {
      std::map<std::string, Array> ByFile;
      for (const Edit& E : F.Fixes)
        ByFile[E.File].push_back(
            Object{{"deletedRegion", region(E.Begin, E.End)}, {"insertedContent", Object{{"text", E.Text}}}});
      Array Changes;
      for (auto& [File, Replacements] : ByFile)
        Changes.push_back(Object{{"artifactLocation", Uris.location(File)}, {"replacements", std::move(Replacements)}});
      Result["fixes"] = Array{Object{{"description", Object{{"text", "apply the clang-tidy fix-it"}}},
                                     {"artifactChanges", std::move(Changes)}}};
    }
    Result["partialFingerprints"] = Object{{"asyncstate/v1", F.Fingerprint}};
    if (Baseline) {
      Result["baselineState"] = baselineState(F.State);
      if (F.State == BaselineState::Unchanged)
        Result["suppressions"] = Array{Object{{"kind", "external"}, {"justification", "recorded in the baseline"}}};
    }
    Results.push_back(std::move(Result));
  }
  // Recorded findings no longer found (SARIF 2.1.0 3.27.24): fixed, or their line changed.
  if (Baseline)
    for (const BaselineEntry& E : Baseline->Comparison.Absent)
      Results.push_back(
          Object{{"ruleId", E.Check},
                 {"ruleIndex", ruleFor(E.Check)},
                 {"level", "none"},
                 {"message", Object{{"text", E.Message}}},
                 {"locations",
                  Array{Object{{"physicalLocation",
                                Object{{"artifactLocation", Uris.location(llvm::sys::path::is_absolute(E.File)
                                                                              ? E.File
                                                                              : Baseline->Root + "/" + E.File)}}}}}},
                 {"partialFingerprints", Object{{"asyncstate/v1", E.Fingerprint}}},
                 {"baselineState", "absent"}});

  Object Run{{"tool", Object{{"driver", Object{{"name", "asyncstate-tidy"},
                                               {"version", ASYNCSTATE_TIDY_VERSION},
                                               {"semanticVersion", ASYNCSTATE_TIDY_VERSION},
                                               {"rules", std::move(RuleList)}}}}},
             {"originalUriBaseIds", Object{{"%SRCROOT%", Object{{"uri", Uris.rootUri()}}}}},
             {"columnKind", "utf16CodeUnits"},
             {"results", std::move(Results)}};
  Object Log{{"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
             {"version", "2.1.0"},
             {"runs", Array{std::move(Run)}}};
  Out << llvm::formatv("{0:2}", Value(std::move(Log))) << "\n";
}

}  // namespace asyncstate_tidy
