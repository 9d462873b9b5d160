#include "RawFutureCheck.h"

#include "utils/Defaults.h"
#include "utils/Matching.h"

#include "clang/AST/ASTContext.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {
constexpr unsigned DeclKind = 0, ExprKind = 1;

// The same type reads the same in every message, however the user spelled it.
std::string spell(QualType Type, const ASTContext& Ctx) {
  PrintingPolicy Policy = Ctx.getPrintingPolicy();
  Policy.FullyQualifiedName = true;
  Policy.SuppressUnwrittenScope = true;
  return Type.getCanonicalType().getUnqualifiedType().getAsString(Policy);
}

// An iterator into a container of futures points at them; it holds none.
bool isIterator(const CXXRecordDecl* Record) {
  const CXXRecordDecl* Definition = Record->getDefinition();
  if (!Definition) return false;
  const IdentifierInfo& Category = Definition->getASTContext().Idents.get("iterator_category");
  for (const CXXRecordDecl* Class = Definition; Class;) {
    if (!Class->lookup(&Category).empty()) return true;
    // libstdc++'s iterators declare the member themselves; others inherit it.
    if (Class->getNumBases() != 1) break;
    Class = Class->bases_begin()->getType()->getAsCXXRecordDecl();
    if (Class) Class = Class->getDefinition();
  }
  return false;
}
}  // namespace

RawFutureCheck::RawFutureCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context),
      RawFutureTypes(parseQualifiedNames(Options.get("RawFutureTypes", defaults::RawFutureTypes))),
      RawFutureFactories(parseQualifiedNames(Options.get("RawFutureFactories", defaults::RawFutureFactories))) {}

void RawFutureCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "RawFutureTypes", serializeQualifiedNames(RawFutureTypes));
  Options.store(Opts, "RawFutureFactories", serializeQualifiedNames(RawFutureFactories));
}

void RawFutureCheck::onStartOfTranslationUnit() {
  AsyncStateCheck::onStartOfTranslationUnit();
  RawFutureCache.clear();
}

void RawFutureCheck::registerMatchers(MatchFinder* Finder) {
  traverseUserCodeOnly(Finder);
  const auto UserCode = unless(isExpansionInSystemHeader());
  Finder->addMatcher(varDecl(UserCode, unless(isImplicit())).bind("decl"), this);
  Finder->addMatcher(fieldDecl(UserCode, unless(isImplicit())).bind("decl"), this);
  std::vector<std::string> Factories;
  for (const std::string& Name : RawFutureFactories) Factories.push_back("::" + Name);
  Finder->addMatcher(callExpr(UserCode, callee(functionDecl(hasAnyName(refs(Factories))))).bind("factory"), this);
  Finder->addMatcher(cxxNewExpr(UserCode).bind("new"), this);
  Finder->addMatcher(
      callExpr(UserCode,
               callee(functionDecl(hasAnyName("::std::make_unique", "::std::make_shared", "::std::allocate_shared"))))
          .bind("make"),
      this);
  Finder->addMatcher(cxxTemporaryObjectExpr(UserCode).bind("temporary"), this);
}

const CXXRecordDecl* RawFutureCheck::rawFutureIn(QualType Type, unsigned Depth) {
  if (Type.isNull() || Depth > 8) return nullptr;
  Type = Type.getCanonicalType().getNonReferenceType();
  while (Type->isPointerType() || Type->isArrayType())
    Type = Type->isPointerType() ? Type->getPointeeType() : QualType(Type->getArrayElementTypeNoTypeQual(), 0);
  Type = Type.getCanonicalType();
  auto [It, Inserted] = RawFutureCache.try_emplace(Type.getTypePtr(), nullptr);
  if (!Inserted) return It->second;
  const CXXRecordDecl* Found = nullptr;
  if (const CXXRecordDecl* Record = Type->getAsCXXRecordDecl()) {
    if (isSameOrDerivedFrom(Record, RawFutureTypes)) {
      Found = Record;
    } else if (const auto* Spec = dyn_cast<ClassTemplateSpecializationDecl>(Record); Spec && !isIterator(Spec)) {
      Found = rawFutureIn(Spec->getTemplateArgs().asArray(), Depth);
    }
  }
  RawFutureCache[Type.getTypePtr()] = Found;
  return Found;
}

// A variadic template (std::variant, std::tuple) holds its types in one argument pack.
const CXXRecordDecl* RawFutureCheck::rawFutureIn(ArrayRef<TemplateArgument> Args, unsigned Depth) {
  for (const TemplateArgument& Arg : Args) {
    const CXXRecordDecl* Found = nullptr;
    if (Arg.getKind() == TemplateArgument::Type)
      Found = rawFutureIn(Arg.getAsType(), Depth + 1);
    else if (Arg.getKind() == TemplateArgument::Pack)
      Found = rawFutureIn(Arg.getPackAsArray(), Depth);
    if (Found) return Found;
  }
  return nullptr;
}

bool RawFutureCheck::initializesFlaggedDecl(const Expr* E, ASTContext& Ctx) {
  DynTypedNode Current = DynTypedNode::create(*E);
  for (unsigned Depth = 0; Depth < 32; ++Depth) {
    auto Parent = Resolver.parentOf(Current, Ctx);
    if (!Parent) return false;
    Current = *Parent;
    if (const auto* D = Current.get<DeclaratorDecl>()) return isa<VarDecl, FieldDecl>(D) && rawFutureIn(D->getType());
    if (!Current.get<Expr>()) return false;
  }
  return false;
}

void RawFutureCheck::check(const MatchFinder::MatchResult& Result) {
  ASTContext& Ctx = *Result.Context;
  if (const auto* D = Result.Nodes.getNodeAs<DeclaratorDecl>("decl")) {
    checkDecl(D, Ctx);
  } else if (const auto* Call = Result.Nodes.getNodeAs<CallExpr>("factory")) {
    if (!Resolver.classify(*Call, Ctx).isAsync() || !Reported.firstTime(Call->getBeginLoc(), ExprKind)) return;
    diag(Call->getBeginLoc(),
         "'%0' in async UDF code runs work outside the controller and returns a raw future; "
         "issue async state requests and chain continuations instead")
        << cast<FunctionDecl>(Call->getCalleeDecl())->getQualifiedNameAsString();
  } else if (const auto* New = Result.Nodes.getNodeAs<CXXNewExpr>("new")) {
    checkAllocation(New, New->getAllocatedType(), Ctx);
  } else if (const auto* Make = Result.Nodes.getNodeAs<CallExpr>("make")) {
    const auto* Callee = cast<FunctionDecl>(Make->getCalleeDecl());
    const TemplateArgumentList* Args = Callee->getTemplateSpecializationArgs();
    if (Args && Args->size() > 0 && Args->get(0).getKind() == TemplateArgument::Type)
      checkAllocation(Make, Args->get(0).getAsType(), Ctx);
  } else if (const auto* Temporary = Result.Nodes.getNodeAs<CXXTemporaryObjectExpr>("temporary")) {
    const CXXRecordDecl* Raw = Temporary->getType()->getAsCXXRecordDecl();
    if (!Raw || !isSameOrDerivedFrom(Raw, RawFutureTypes) || initializesFlaggedDecl(Temporary, Ctx) ||
        !Resolver.classify(*Temporary, Ctx).isAsync() || !Reported.firstTime(Temporary->getBeginLoc(), ExprKind))
      return;
    diag(Temporary->getBeginLoc(),
         "raw future '%0' created in async UDF code; use asyncstate::StateFuture, "
         "which is pooled and routes failures to the error handler")
        << spell(Temporary->getType(), Ctx);
  }
}

void RawFutureCheck::checkDecl(const DeclaratorDecl* D, ASTContext& Ctx) {
  if (const auto* Var = dyn_cast<VarDecl>(D)) {
    if (Var->isInitCapture()) return;
    // `auto f = std::async(...)` is reported once, at the call.
    if (const auto* Init = dyn_cast_or_null<CallExpr>(Var->getInit() ? Var->getInit()->IgnoreImplicit() : nullptr))
      if (matchesQualifiedName(dyn_cast_or_null<NamedDecl>(Init->getCalleeDecl()), RawFutureFactories)) return;
  }
  const CXXRecordDecl* Raw = rawFutureIn(D->getType());
  if (!Raw || !D->getLocation().isValid()) return;
  if (!Resolver.classify(*D, Ctx).isAsync() || !Reported.firstTime(D->getLocation(), DeclKind)) return;
  const char* Kind = isa<FieldDecl>(D) ? "field" : isa<ParmVarDecl>(D) ? "parameter" : "variable";
  diag(D->getLocation(),
       "%0 %1 holds a raw '%2' in async UDF code; use asyncstate::StateFuture, which is pooled "
       "and routes failures to the error handler")
      << Kind << D << Raw->getQualifiedNameAsString();
}

void RawFutureCheck::checkAllocation(const Expr* E, QualType Allocated, ASTContext& Ctx) {
  const CXXRecordDecl* Record = Allocated.isNull() ? nullptr : Allocated->getAsCXXRecordDecl();
  const bool StateFuture = Resolver.isFutureClass(Record);
  const bool Raw = !StateFuture && isSameOrDerivedFrom(Record, RawFutureTypes);
  if (!StateFuture && !Raw) return;
  if (Raw && initializesFlaggedDecl(E, Ctx)) return;
  if (!Resolver.classify(*E, Ctx).isAsync() || !Reported.firstTime(E->getBeginLoc(), ExprKind)) return;
  diag(E->getBeginLoc(), StateFuture ? "heap-allocated state future '%0' in async UDF code; state futures come "
                                       "from the controller's pool, keep them by value and move them along"
                                     : "heap-allocated raw future '%0' in async UDF code; use "
                                       "asyncstate::StateFuture by value instead")
      << spell(Allocated, Ctx);
}

}  // namespace clang::tidy::asyncstate
