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

// Option lists of qualified names accept "::ns::Name" or "ns::Name".
std::vector<std::string> readQualifiedNames(const ClangTidyCheck::OptionsView& Options, StringRef Key,
                                            StringRef Default);
std::string joinQualifiedNames(const std::vector<std::string>& Names);
StringRef lastComponent(StringRef QualifiedName);

// Compares the declaration's qualified name (template arguments excluded).
bool matchesQualifiedName(const NamedDecl* D, const std::vector<std::string>& Names);

// Whether this function or the declaration it was instantiated from carries
// [[clang::annotate(Annotation)]].
bool hasAnnotation(const FunctionDecl* Function, StringRef Annotation);

// value -> asyncValue, addAll -> asyncAddAll: Flink State V2 naming.
std::string asyncCounterpartName(StringRef SyncName);
const CXXMethodDecl* findMethod(const CXXRecordDecl* Record, StringRef Name);

}  // namespace clang::tidy::asyncstate
