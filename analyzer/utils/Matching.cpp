#include "utils/Matching.h"

#include "clang-tidy/utils/OptionsUtils.h"
#include "clang/AST/Attr.h"
#include "clang/AST/DeclTemplate.h"
#include "llvm/ADT/StringExtras.h"

#include <algorithm>

namespace clang::tidy::asyncstate {

bool contains(const std::vector<std::string>& Names, StringRef Name) {
  return llvm::any_of(Names, [&](const std::string& Candidate) { return Candidate == Name; });
}

std::vector<StringRef> refs(const std::vector<std::string>& Names) {
  return std::vector<StringRef>(Names.begin(), Names.end());
}

std::vector<std::string> parseList(StringRef Value) {
  std::vector<std::string> Items;
  for (StringRef Item : utils::options::parseStringList(Value))
    if (!(Item = Item.trim()).empty()) Items.push_back(Item.str());
  return Items;
}

std::string serializeList(const std::vector<std::string>& Items) {
  return utils::options::serializeStringList(refs(Items));
}

std::vector<std::string> parseQualifiedNames(StringRef Value) {
  std::vector<std::string> Names = parseList(Value);
  for (std::string& Name : Names)
    if (StringRef(Name).starts_with("::")) Name.erase(0, 2);
  return Names;
}

std::string serializeQualifiedNames(const std::vector<std::string>& Names) {
  std::vector<std::string> Spelled;
  for (const std::string& Name : Names) Spelled.push_back("::" + Name);
  return serializeList(Spelled);
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

const NamedDecl* namedClassOf(QualType Type) {
  if (Type.isNull()) return nullptr;
  if (const CXXRecordDecl* Record = Type->getAsCXXRecordDecl()) return Record;
  if (const auto* Spec = Type->getAs<TemplateSpecializationType>()) return Spec->getTemplateName().getAsTemplateDecl();
  return nullptr;
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

std::vector<std::string> identifierWords(StringRef Name) {
  std::vector<std::string> Words;
  std::string Word;
  auto flush = [&] {
    if (!Word.empty()) Words.push_back(std::move(Word));
    Word.clear();
  };
  for (size_t I = 0; I < Name.size(); ++I) {
    const char C = Name[I];
    if (!llvm::isAlnum(C)) {
      flush();
      continue;
    }
    const bool Upper = llvm::isUpper(C);
    const bool AfterLower = I > 0 && (llvm::isLower(Name[I - 1]) || llvm::isDigit(Name[I - 1]));
    // "HTTPError": the last capital of a run starts the next word.
    const bool EndsAcronym = I > 0 && llvm::isUpper(Name[I - 1]) && I + 1 < Name.size() && llvm::isLower(Name[I + 1]);
    if (Upper && (AfterLower || EndsAcronym)) flush();
    Word += llvm::toLower(C);
  }
  flush();
  return Words;
}

ReportingNames::ReportingNames(std::vector<std::string> Entries) : Entries(std::move(Entries)) {
  for (const std::string& Entry : this->Entries) Split.push_back(identifierWords(Entry));
}

bool ReportingNames::matches(StringRef Name) const {
  const std::vector<std::string> Words = identifierWords(Name);
  for (const std::vector<std::string>& Entry : Split) {
    if (Entry.empty() || Entry.size() > Words.size()) continue;
    for (size_t Start = 0; Start + Entry.size() <= Words.size(); ++Start)
      if (std::equal(Entry.begin(), Entry.end(), Words.begin() + Start)) return true;
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
