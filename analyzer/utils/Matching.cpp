#include "utils/Matching.h"

#include "utils/AsyncScope.h"

#include "clang/AST/Attr.h"
#include "clang/AST/DeclTemplate.h"

namespace clang::tidy::asyncstate {

bool contains(const std::vector<std::string>& Names, StringRef Name) {
  return llvm::any_of(Names, [&](const std::string& Candidate) { return Candidate == Name; });
}

std::vector<StringRef> refs(const std::vector<std::string>& Names) {
  return std::vector<StringRef>(Names.begin(), Names.end());
}

std::vector<std::string> readQualifiedNames(const ClangTidyCheck::OptionsView& Options, StringRef Key,
                                            StringRef Default) {
  std::vector<std::string> Names;
  for (const std::string& Name : splitList(Options.getLocalOrGlobal(Key, Default)))
    Names.push_back(normalizeName(Name));
  return Names;
}

std::string joinQualifiedNames(const std::vector<std::string>& Names) {
  std::vector<std::string> Spelled;
  for (const std::string& Name : Names) Spelled.push_back("::" + Name);
  return joinList(Spelled);
}

StringRef lastComponent(StringRef QualifiedName) {
  const size_t Colons = QualifiedName.rfind("::");
  return Colons == StringRef::npos ? QualifiedName : QualifiedName.substr(Colons + 2);
}

namespace {

// "ns::Base<int, X>::Context" -> "ns::Base::Context": nested classes of class
// template specializations are named like their template's member.
std::string withoutTemplateArguments(StringRef Name) {
  std::string Result;
  unsigned Depth = 0;
  for (const char C : Name) {
    if (C == '<')
      ++Depth;
    else if (C == '>' && Depth > 0)
      --Depth;
    else if (Depth == 0)
      Result += C;
  }
  return Result;
}

}  // namespace

bool matchesQualifiedName(const NamedDecl* D, const std::vector<std::string>& Names) {
  if (!D || !D->getDeclName().isIdentifier()) return false;
  const StringRef Short = D->getName();
  std::string Qualified;
  for (const std::string& Name : Names) {
    if (lastComponent(Name) != Short) continue;
    if (Qualified.empty()) Qualified = withoutTemplateArguments(D->getQualifiedNameAsString());
    if (Qualified == Name) return true;
  }
  return false;
}

bool hasAnnotation(const FunctionDecl* Function, StringRef Annotation) {
  for (unsigned Depth = 0; Function && Depth < 4; ++Depth) {
    // AnnotateAttr is inheritable: every redeclaration after the annotated one has it.
    for (const auto* Attr : Function->specific_attrs<AnnotateAttr>())
      if (Attr->getAnnotation() == Annotation) return true;
    const FunctionDecl* Pattern = Function->getTemplateInstantiationPattern();
    Function = Pattern == Function ? nullptr : Pattern;
  }
  return false;
}

std::string asyncCounterpartName(StringRef SyncName) {
  if (SyncName.empty()) return {};
  return "async" + SyncName.substr(0, 1).upper() + SyncName.substr(1).str();
}

const CXXMethodDecl* findMethod(const CXXRecordDecl* Record, StringRef Name) {
  if (!Record || !(Record = Record->getDefinition())) return nullptr;
  for (const Decl* Member : Record->decls()) {
    const auto* Method = dyn_cast<CXXMethodDecl>(Member);
    if (const auto* Template = dyn_cast<FunctionTemplateDecl>(Member))
      Method = dyn_cast<CXXMethodDecl>(Template->getTemplatedDecl());
    if (Method && Method->getDeclName().isIdentifier() && Method->getName() == Name) return Method;
  }
  for (const CXXBaseSpecifier& Base : Record->bases())
    if (const CXXMethodDecl* Method = findMethod(Base.getType()->getAsCXXRecordDecl(), Name)) return Method;
  return nullptr;
}

}  // namespace clang::tidy::asyncstate
