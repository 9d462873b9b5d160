#include "utils/AsyncScope.h"

#include "utils/Matching.h"

#include "clang/AST/ASTLambda.h"
#include "clang/AST/StmtCXX.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"
#include "clang/ASTMatchers/ASTMatchers.h"
#include "llvm/ADT/StringExtras.h"

namespace clang::tidy::asyncstate {

std::vector<std::string> splitList(StringRef Value) {
  SmallVector<StringRef, 16> Parts;
  Value.split(Parts, ';', -1, false);
  std::vector<std::string> Result;
  for (StringRef Part : Parts) {
    Part = Part.trim();
    if (!Part.empty()) Result.push_back(Part.str());
  }
  return Result;
}

std::string joinList(const std::vector<std::string>& Items) { return llvm::join(Items, ";"); }

std::string normalizeName(StringRef Name) {
  Name = Name.trim();
  Name.consume_front("::");
  return Name.str();
}

namespace {

constexpr const char* DefaultContinuationMethods =
    "thenAccept;thenApply;thenCompose;thenCombine;thenConditionallyAccept;exceptionally;handle;onNext";

// Dependent bases and return types (inside templates) have no record yet, only
// the template they name.
const NamedDecl* namedClassOf(QualType Type) {
  if (Type.isNull()) return nullptr;
  if (const CXXRecordDecl* Record = Type->getAsCXXRecordDecl()) return Record;
  if (const auto* Spec = Type->getAs<TemplateSpecializationType>()) return Spec->getTemplateName().getAsTemplateDecl();
  return nullptr;
}

bool isWrapper(const Stmt* S) {
  if (isa<ImplicitCastExpr, MaterializeTemporaryExpr, CXXBindTemporaryExpr, ExprWithCleanups, ParenExpr,
          CXXFunctionalCastExpr, OpaqueValueExpr>(S))
    return true;
  if (const auto* Construct = dyn_cast<CXXConstructExpr>(S))
    return !isa<CXXTemporaryObjectExpr>(Construct) && Construct->getNumArgs() == 1;
  // std::move / std::forward hand the same object on.
  if (const auto* Call = dyn_cast<CallExpr>(S))
    if (const auto* Callee = dyn_cast_or_null<FunctionDecl>(Call->getCalleeDecl()))
      return Call->getNumArgs() == 1 && Callee->isInStdNamespace() && Callee->getDeclName().isIdentifier() &&
             (Callee->getName() == "move" || Callee->getName() == "forward");
  return false;
}

const Expr* unwrap(const Expr* E) {
  while (E) {
    E = E->IgnoreImplicit()->IgnoreParens();
    if (const auto* Construct = dyn_cast<CXXConstructExpr>(E);
        Construct && !isa<CXXTemporaryObjectExpr>(Construct) && Construct->getNumArgs() == 1) {
      E = Construct->getArg(0);
      continue;
    }
    if (const auto* Cast = dyn_cast<CXXFunctionalCastExpr>(E)) {
      E = Cast->getSubExpr();
      continue;
    }
    if (const auto* Call = dyn_cast<CallExpr>(E); Call && isWrapper(Call)) {
      E = Call->getArg(0);
      continue;
    }
    break;
  }
  return E;
}

}  // namespace

ApiNames::ApiNames(const ClangTidyCheck::OptionsView& Options)
    : UdfBaseClasses(readQualifiedNames(Options, "UdfBaseClasses", "::asyncstate::KeyedProcessFunction")),
      TaskTypes(readQualifiedNames(Options, "TaskTypes", "::asyncstate::Task")),
      FutureTypes(readQualifiedNames(Options, "FutureTypes", "::asyncstate::StateFuture")),
      IteratorTypes(readQualifiedNames(Options, "IteratorTypes", "::asyncstate::StateIterator")),
      ContinuationMethods(splitList(Options.getLocalOrGlobal("ContinuationMethods", DefaultContinuationMethods))),
      IgnoredNamespaces(readQualifiedNames(Options, "IgnoredNamespaces", "::asyncstate")) {}

void ApiNames::store(ClangTidyCheck::OptionsView& Options, ClangTidyOptions::OptionMap& Opts) const {
  Options.store(Opts, "UdfBaseClasses", joinQualifiedNames(UdfBaseClasses));
  Options.store(Opts, "TaskTypes", joinQualifiedNames(TaskTypes));
  Options.store(Opts, "FutureTypes", joinQualifiedNames(FutureTypes));
  Options.store(Opts, "IteratorTypes", joinQualifiedNames(IteratorTypes));
  Options.store(Opts, "ContinuationMethods", joinList(ContinuationMethods));
  Options.store(Opts, "IgnoredNamespaces", joinQualifiedNames(IgnoredNamespaces));
}

bool isSameOrDerivedFrom(const CXXRecordDecl* Record, const std::vector<std::string>& Names) {
  if (!Record) return false;
  if (matchesQualifiedName(Record, Names)) return true;
  if (const auto* Spec = dyn_cast<ClassTemplateSpecializationDecl>(Record))
    if (matchesQualifiedName(Spec->getSpecializedTemplate(), Names)) return true;
  const CXXRecordDecl* Definition = Record->getDefinition();
  if (!Definition) return false;
  for (const CXXBaseSpecifier& Base : Definition->bases()) {
    const NamedDecl* BaseDecl = namedClassOf(Base.getType());
    if (const auto* BaseRecord = dyn_cast_or_null<CXXRecordDecl>(BaseDecl)) {
      if (isSameOrDerivedFrom(BaseRecord, Names)) return true;
    } else if (matchesQualifiedName(BaseDecl, Names)) {
      return true;
    }
  }
  return false;
}

const CXXRecordDecl* pointeeRecord(QualType Type) {
  if (Type.isNull()) return nullptr;
  Type = Type.getNonReferenceType().getCanonicalType();
  while (Type->isPointerType()) Type = Type->getPointeeType().getCanonicalType();
  return Type->getAsCXXRecordDecl();
}

void AsyncScopeResolver::reset() {
  UdfClassCache.clear();
  ContinuationCache.clear();
}

bool AsyncScopeResolver::isUdfClass(const CXXRecordDecl* Record) {
  if (!Record) return false;
  auto [It, Inserted] = UdfClassCache.try_emplace(Record, false);
  if (Inserted) It->second = !Record->isLambda() && isSameOrDerivedFrom(Record, Names.UdfBaseClasses);
  return It->second;
}

bool AsyncScopeResolver::isTaskCoroutine(const FunctionDecl* Function) const {
  if (!Function || !Function->hasBody() || !isa_and_nonnull<CoroutineBodyStmt>(Function->getBody())) return false;
  const NamedDecl* Returned = namedClassOf(Function->getReturnType().getCanonicalType());
  if (!Returned) Returned = namedClassOf(Function->getReturnType());
  if (const auto* Record = dyn_cast_or_null<CXXRecordDecl>(Returned))
    return isSameOrDerivedFrom(Record, Names.TaskTypes);
  return matchesQualifiedName(Returned, Names.TaskTypes);
}

bool AsyncScopeResolver::isFutureClass(const CXXRecordDecl* Record) const {
  return isSameOrDerivedFrom(Record, Names.FutureTypes) || isSameOrDerivedFrom(Record, Names.TaskTypes);
}

bool AsyncScopeResolver::isInLibrary(const Decl* D) const {
  if (!D) return false;
  for (const DeclContext* Ctx = D->getDeclContext(); Ctx; Ctx = Ctx->getParent())
    if (const auto* Namespace = dyn_cast<NamespaceDecl>(Ctx))
      if (matchesQualifiedName(Namespace, Names.IgnoredNamespaces)) return true;
  return false;
}

bool AsyncScopeResolver::isContinuationCall(const CallExpr* Call) const {
  const auto* Member = dyn_cast_or_null<CXXMemberCallExpr>(Call);
  if (!Member) return false;
  const CXXMethodDecl* Method = Member->getMethodDecl();
  if (!Method || !Method->getDeclName().isIdentifier()) return false;
  if (llvm::find(Names.ContinuationMethods, Method->getName()) == Names.ContinuationMethods.end()) return false;
  const CXXRecordDecl* Object = pointeeRecord(Member->getImplicitObjectArgument()->getType());
  return isFutureClass(Object) || isSameOrDerivedFrom(Object, Names.IteratorTypes);
}

const CXXMemberCallExpr* AsyncScopeResolver::callTakingAsArgument(const Expr* E, ASTContext& Ctx) const {
  DynTypedNode Current = DynTypedNode::create(*E);
  for (unsigned Depth = 0; Depth < 16; ++Depth) {
    auto Parents = Ctx.getParents(Current);
    if (Parents.empty()) return nullptr;
    const auto* ParentStmt = Parents[0].get<Stmt>();
    if (!ParentStmt) return nullptr;
    if (const auto* Call = dyn_cast<CallExpr>(ParentStmt); Call && !isWrapper(Call)) {
      const Stmt* Child = Current.get<Stmt>();
      for (const Expr* Arg : Call->arguments())
        if (Arg == Child) return isContinuationCall(Call) ? cast<CXXMemberCallExpr>(Call) : nullptr;
      return nullptr;
    }
    if (!isWrapper(ParentStmt)) return nullptr;
    Current = Parents[0];
  }
  return nullptr;
}

const CXXMemberCallExpr* AsyncScopeResolver::continuationCallOfVariable(const VarDecl* Var, ASTContext& Ctx) {
  using namespace ast_matchers;
  if (!Var->hasLocalStorage()) return nullptr;
  // Search the function (or lambda) body that declares the variable.
  DynTypedNode Current = DynTypedNode::create(*Var);
  const Stmt* Body = nullptr;
  for (unsigned Depth = 0; Depth < 256 && !Body; ++Depth) {
    auto Parents = Ctx.getParents(Current);
    if (Parents.empty()) return nullptr;
    Current = Parents[0];
    if (const auto* Function = Current.get<FunctionDecl>())
      Body = Function->getBody();
    else if (const auto* Lambda = Current.get<LambdaExpr>())
      Body = Lambda->getBody();
  }
  if (!Body) return nullptr;
  for (const BoundNodes& Use : match(findAll(declRefExpr(to(varDecl(equalsNode(Var)))).bind("use")), *Body, Ctx))
    if (const CXXMemberCallExpr* Call = callTakingAsArgument(Use.getNodeAs<Expr>("use"), Ctx)) return Call;
  return nullptr;
}

const CXXMemberCallExpr* AsyncScopeResolver::continuationCallOf(const LambdaExpr* Lambda, ASTContext& Ctx) {
  auto [It, Inserted] = ContinuationCache.try_emplace(Lambda, nullptr);
  if (!Inserted) return It->second;
  const CXXMemberCallExpr* Call = callTakingAsArgument(Lambda, Ctx);
  if (!Call) {
    // `auto onValue = [&](...) {...}; future.thenAccept(onValue);`
    DynTypedNode Current = DynTypedNode::create(*Lambda);
    for (unsigned Depth = 0; Depth < 8; ++Depth) {
      auto Parents = Ctx.getParents(Current);
      if (Parents.empty()) break;
      if (const auto* Var = Parents[0].get<VarDecl>()) {
        Call = continuationCallOfVariable(Var, Ctx);
        break;
      }
      const auto* ParentStmt = Parents[0].get<Stmt>();
      if (!ParentStmt || !isWrapper(ParentStmt)) break;
      Current = Parents[0];
    }
  }
  // The cache entry may have moved while the variable's uses were resolved.
  ContinuationCache[Lambda] = Call;
  return Call;
}

const LambdaExpr* AsyncScopeResolver::lambdaOf(const Expr* Argument) {
  const Expr* E = unwrap(Argument);
  if (const auto* Ref = dyn_cast_or_null<DeclRefExpr>(E))
    if (const auto* Var = dyn_cast<VarDecl>(Ref->getDecl()); Var && Var->hasLocalStorage() && Var->getInit())
      E = unwrap(Var->getInit());
  return dyn_cast_or_null<LambdaExpr>(E);
}

bool AsyncScopeResolver::isAwaitedImmediately(const CXXMemberCallExpr* Call, ASTContext& Ctx) {
  DynTypedNode Current = DynTypedNode::create(*Call);
  for (unsigned Depth = 0; Depth < 64; ++Depth) {
    auto Parents = Ctx.getParents(Current);
    if (Parents.empty()) return false;
    const auto* ParentStmt = Parents[0].get<Stmt>();
    if (!ParentStmt) return false;
    if (isa<CoawaitExpr, DependentCoawaitExpr>(ParentStmt)) return true;
    // Further links of the same chain: `.thenApply(...).thenAccept(...)`.
    const bool ChainLink =
        isa<MemberExpr>(ParentStmt) ||
        (isa<CXXMemberCallExpr>(ParentStmt) &&
         cast<CXXMemberCallExpr>(ParentStmt)->getImplicitObjectArgument()->IgnoreImplicit() == Current.get<Expr>());
    if (!ChainLink && !isWrapper(ParentStmt)) return false;
    Current = Parents[0];
  }
  return false;
}

Scope AsyncScopeResolver::classify(const DynTypedNode& Node, ASTContext& Ctx) {
  ScopeKind Inner = ScopeKind::None;
  const Decl* Outermost = Node.get<Decl>();
  DynTypedNode Current = Node;
  for (unsigned Depth = 0; Depth < 1024; ++Depth) {
    auto Parents = Ctx.getParents(Current);
    if (Parents.empty()) break;
    Current = Parents[0];
    if (const auto* Lambda = Current.get<LambdaExpr>()) {
      if (Inner == ScopeKind::None) {
        if (continuationCallOf(Lambda, Ctx))
          Inner = ScopeKind::Continuation;
        else if (isTaskCoroutine(Lambda->getCallOperator()))
          Inner = ScopeKind::TaskCoroutine;
      }
      continue;
    }
    if (const auto* Function = Current.get<FunctionDecl>()) {
      // Generic lambdas: instantiated bodies hang off the closure's operator().
      if (isLambdaCallOperator(Function)) continue;
      Outermost = Function;
      if (Inner != ScopeKind::None) break;
      if (isTaskCoroutine(Function))
        Inner = ScopeKind::TaskCoroutine;
      else if (const auto* Method = dyn_cast<CXXMethodDecl>(Function); Method && isUdfClass(Method->getParent()))
        Inner = ScopeKind::UdfMember;
      break;
    }
    if (const auto* Record = Current.get<CXXRecordDecl>()) {
      if (Record->isLambda()) continue;
      Outermost = Record;
      if (Inner == ScopeKind::None && isUdfClass(Record)) Inner = ScopeKind::UdfMember;
      break;
    }
    if (Current.get<TranslationUnitDecl>() || Current.get<NamespaceDecl>()) break;
    if (const auto* D = Current.get<Decl>()) Outermost = D;
  }
  if (isInLibrary(Outermost)) return Scope{};
  return Scope{Inner};
}

}  // namespace clang::tidy::asyncstate
