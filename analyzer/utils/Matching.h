// Name-based matching helpers: option lists of qualified names, annotations, and
// the sync -> async method naming convention of the state API.
#pragma once

#include "clang-tidy/ClangTidyCheck.h"
#include "clang/AST/DeclCXX.h"

#include <string>
#include <vector>

namespace clang::tidy::asyncstate {

bool contains(const std::vector<std::string>& Names, StringRef Name);
// hasAnyName() takes StringRefs; the strings stay owned by the check.
std::vector<StringRef> refs(const std::vector<std::string>& Names);

// List options are ';'-separated and go through clang-tidy's own
// utils::options::parseStringList / serializeStringList.
std::vector<std::string> parseList(StringRef Value);
std::string serializeList(const std::vector<std::string>& Items);

// Lists of qualified names accept "::ns::Name" or "ns::Name"; they are kept
// without the leading "::", as NamedDecl::getQualifiedNameAsString spells them.
std::vector<std::string> parseQualifiedNames(StringRef Value);
std::string serializeQualifiedNames(const std::vector<std::string>& Names);
StringRef lastComponent(StringRef QualifiedName);

// Compares the declaration's qualified name (template arguments excluded).
bool matchesQualifiedName(const NamedDecl* D, const std::vector<std::string>& Names);

// The class a type names: its record, or, for a dependent specialization inside a
// template (`Collector<Out>`, a dependent base), which has no record yet, the class
// template it names.
const NamedDecl* namedClassOf(QualType Type);

// Whether this function or the declaration it was instantiated from carries
// [[clang::annotate(Annotation)]].
bool hasAnnotation(const FunctionDecl* Function, StringRef Annotation);

// Whether a function name says it reports something, judged by its words
// (camelCase and snake_case split, case-insensitive), never by substrings:
// logError, LOG, count_failures, setException report; catalog, login,
// fingerprint and discount do not. An entry of several words ("setException")
// matches those words in sequence.
class ReportingNames {
 public:
  explicit ReportingNames(std::vector<std::string> Entries);
  bool matches(StringRef Name) const;
  const std::vector<std::string>& words() const { return Entries; }

 private:
  std::vector<std::string> Entries;
  std::vector<std::vector<std::string>> Split;
};

// "HTTPErrorCount_total" -> {"http", "error", "count", "total"}.
std::vector<std::string> identifierWords(StringRef Name);

// value -> asyncValue, addAll -> asyncAddAll: Flink State V2 naming.
std::string asyncCounterpartName(StringRef SyncName);
const CXXMethodDecl* findMethod(const CXXRecordDecl* Record, StringRef Name);

}  // namespace clang::tidy::asyncstate
