#include "utils/AsyncScope.h"

#include "utils/Defaults.h"
#include "utils/Matching.h"
#include "utils/UserCodeParents.h"

#include "clang/AST/ASTLambda.h"
#include "clang/AST/RecursiveASTVisitor.h"
#include "clang/AST/StmtCXX.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"
#include "clang/ASTMatchers/ASTMatchers.h"
#include "llvm/ADT/StringExtras.h"

namespace clang::tidy::asyncstate {

namespace {

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
    : UdfBaseClasses(parseQualifiedNames(Options.getLocalOrGlobal("UdfBaseClasses", defaults::UdfBaseClasses))),
      TaskTypes(parseQualifiedNames(Options.getLocalOrGlobal("TaskTypes", defaults::TaskTypes))),
      FutureTypes(parseQualifiedNames(Options.getLocalOrGlobal("FutureTypes", defaults::FutureTypes))),
      IteratorTypes(parseQualifiedNames(Options.getLocalOrGlobal("IteratorTypes", defaults::IteratorTypes))),
      ContinuationMethods(parseList(Options.getLocalOrGlobal("ContinuationMethods", defaults::ContinuationMethods))),
      ContinuationFunctions(
          parseQualifiedNames(Options.getLocalOrGlobal("ContinuationFunctions", defaults::ContinuationFunctions))),
      OffThreadCallees(parseQualifiedNames(Options.getLocalOrGlobal("OffThreadCallees", defaults::OffThreadCallees))),
      IgnoredNamespaces(
          parseQualifiedNames(Options.getLocalOrGlobal("IgnoredNamespaces", defaults::IgnoredNamespaces))) {}

void ApiNames::store(ClangTidyCheck::OptionsView& Options, ClangTidyOptions::OptionMap& Opts) const {
  Options.store(Opts, "UdfBaseClasses", serializeQualifiedNames(UdfBaseClasses));
  Options.store(Opts, "TaskTypes", serializeQualifiedNames(TaskTypes));
  Options.store(Opts, "FutureTypes", serializeQualifiedNames(FutureTypes));
  Options.store(Opts, "IteratorTypes", serializeQualifiedNames(IteratorTypes));
  Options.store(Opts, "ContinuationMethods", serializeList(ContinuationMethods));
  Options.store(Opts, "ContinuationFunctions", serializeQualifiedNames(ContinuationFunctions));
  Options.store(Opts, "OffThreadCallees", serializeQualifiedNames(OffThreadCallees));
  Options.store(Opts, "IgnoredNamespaces", serializeQualifiedNames(IgnoredNamespaces));
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

const CXXRecordDecl* objectRecord(const CXXMemberCallExpr* Call) {
  const Expr* Object = Call->getImplicitObjectArgument();
  return Object ? pointeeRecord(Object->IgnoreParenImpCasts()->getType()) : nullptr;
}

namespace {

// Stops at the first call returning a state future or task, or a co_await.
class AsyncUseFinder : public RecursiveASTVisitor<AsyncUseFinder> {
 public:
  explicit AsyncUseFinder(const AsyncScopeResolver& Resolver) : Resolver(Resolver) {}
  bool Found = false;
  bool shouldVisitLambdaBody() const { return true; }
  bool VisitCoawaitExpr(CoawaitExpr*) { return !(Found = true); }
  bool VisitCallExpr(CallExpr* Call) {
    if (Resolver.isFutureClass(Call->getType()->getAsCXXRecordDecl())) Found = true;
    return !Found;
  }

 private:
  const AsyncScopeResolver& Resolver;
};

class LocalUseCollector : public RecursiveASTVisitor<LocalUseCollector> {
 public:
  explicit LocalUseCollector(llvm::DenseMap<const VarDecl*, llvm::SmallVector<const DeclRefExpr*, 2>>& Uses)
      : Uses(Uses) {}
  bool VisitDeclRefExpr(DeclRefExpr* Ref) {
    if (const auto* Var = dyn_cast<VarDecl>(Ref->getDecl()); Var && Var->hasLocalStorage()) Uses[Var].push_back(Ref);
    return true;
  }

 private:
  llvm::DenseMap<const VarDecl*, llvm::SmallVector<const DeclRefExpr*, 2>>& Uses;
};

bool isCallOperator(const FunctionDecl* Function) { return Function->getOverloadedOperator() == OO_Call; }

}  // namespace

void AsyncScopeResolver::reset() {
  UdfClassCache.clear();
  AsyncUdfCache.clear();
  ContinuationCache.clear();
  HelperCache.clear();
  UsesByBody.clear();
  IndexBuilt = false;
  FunctorClasses.clear();
  FactoryCalls.clear();
}

bool AsyncScopeResolver::isUdfClass(const CXXRecordDecl* Record) {
  if (!Record) return false;
  auto [It, Inserted] = UdfClassCache.try_emplace(Record, false);
  if (Inserted) It->second = !Record->isLambda() && isSameOrDerivedFrom(Record, Names.UdfBaseClasses);
  return It->second;
}

bool AsyncScopeResolver::usesAsyncState(const CXXRecordDecl* Record) {
  if (!Record || !(Record = Record->getDefinition())) return false;
  auto [It, Inserted] = AsyncUdfCache.try_emplace(Record, false);
  if (!Inserted) return It->second;
  AsyncUseFinder Finder(*this);
  for (const CXXMethodDecl* Method : Record->methods()) {
    const FunctionDecl* Definition = Method->getDefinition();
    if (Definition && Definition->getBody()) Finder.TraverseStmt(Definition->getBody());
    if (Finder.Found) break;
  }
  AsyncUdfCache[Record] = Finder.Found;
  return Finder.Found;
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
  if (!Call) return false;
  if (const auto* Member = dyn_cast<CXXMemberCallExpr>(Call)) {
    const CXXMethodDecl* Method = Member->getMethodDecl();
    if (Method && Method->getDeclName().isIdentifier() && contains(Names.ContinuationMethods, Method->getName())) {
      const CXXRecordDecl* Object = objectRecord(Member);
      if (isFutureClass(Object) || isSameOrDerivedFrom(Object, Names.IteratorTypes)) return true;
    }
  }
  if (Names.ContinuationFunctions.empty()) return false;
  const auto* Callee = dyn_cast_or_null<FunctionDecl>(Call->getCalleeDecl());
  return Callee && matchesQualifiedName(Callee, Names.ContinuationFunctions);
}

std::optional<DynTypedNode> AsyncScopeResolver::parentOf(const DynTypedNode& Node, ASTContext& Ctx) const {
  return UserCodeParents::instance().parentOf(Node, Ctx, Names.IgnoredNamespaces);
}

bool AsyncScopeResolver::isUnevaluated(const Stmt& S, ASTContext& Ctx) const {
  UserCodeParents& Parents = UserCodeParents::instance();
  DynTypedNode Current = DynTypedNode::create(S);
  for (unsigned Depth = 0; Depth < 1024; ++Depth) {
    const auto* Node = Current.get<Stmt>();
    if (!Node) return false;  // a declaration: the walk left the expression
    if (Parents.isTypeOperand(Node, Ctx, Names.IgnoredNamespaces) || isa<UnaryExprOrTypeTraitExpr>(Node) ||
        isa<CXXNoexceptExpr>(Node) || isa<RequiresExpr>(Node))
      return true;
    if (const auto* Typeid = dyn_cast<CXXTypeidExpr>(Node); Typeid && !Typeid->isPotentiallyEvaluated()) return true;
    if (isa<LambdaExpr>(Node)) return false;
    auto Parent = parentOf(Current, Ctx);
    if (!Parent) return false;
    Current = *Parent;
  }
  return false;
}

std::string AsyncScopeResolver::calleeName(const CallExpr* Call) {
  const auto* Callee = dyn_cast_or_null<NamedDecl>(Call->getCalleeDecl());
  return Callee ? Callee->getNameAsString() : std::string("(call)");
}

const AsyncScopeResolver::VarUses& AsyncScopeResolver::usesIn(const Stmt* Body) {
  auto [It, Inserted] = UsesByBody.try_emplace(Body);
  if (Inserted) {
    VarUses Uses;
    LocalUseCollector(Uses).TraverseStmt(const_cast<Stmt*>(Body));
    // The map may have grown meanwhile; look the entry up again.
    UsesByBody[Body] = std::move(Uses);
    return UsesByBody[Body];
  }
  return It->second;
}

const CallExpr* AsyncScopeResolver::helperAttaching(const FunctionDecl* Helper, unsigned Parameter, ASTContext& Ctx,
                                                    unsigned HelperDepth) {
  // The standard library's algorithms and wrappers run what they are given, or
  // store it; none of them attaches continuations.
  if (!Helper || HelperDepth == 0 || Helper->isInStdNamespace() || Parameter >= Helper->getNumParams()) return nullptr;
  const Stmt* Body = Helper->getBody();
  if (!Body) return nullptr;
  auto [It, Inserted] = HelperCache.try_emplace({Helper, Parameter}, nullptr);
  if (!Inserted) return It->second;
  const CallExpr* Found = nullptr;
  const VarUses& Uses = usesIn(Body);
  if (auto Use = Uses.find(Helper->getParamDecl(Parameter)); Use != Uses.end())
    for (const DeclRefExpr* Ref : Use->second)
      if ((Found = callTakingAsArgument(Ref, Ctx, HelperDepth - 1))) break;
  HelperCache[{Helper, Parameter}] = Found;
  return Found;
}

const CallExpr* AsyncScopeResolver::callTakingAsArgument(const Expr* E, ASTContext& Ctx, unsigned HelperDepth) {
  DynTypedNode Current = DynTypedNode::create(*E);
  for (unsigned Depth = 0; Depth < 16; ++Depth) {
    auto Parent = parentOf(Current, Ctx);
    if (!Parent) return nullptr;
    const auto* ParentStmt = Parent->get<Stmt>();
    if (!ParentStmt) return nullptr;
    if (const auto* Call = dyn_cast<CallExpr>(ParentStmt); Call && !isWrapper(Call)) {
      const Stmt* Child = Current.get<Stmt>();
      for (unsigned I = 0; I < Call->getNumArgs(); ++I) {
        if (Call->getArg(I) != Child) continue;
        if (isContinuationCall(Call)) return Call;
        const auto* Callee = dyn_cast_or_null<FunctionDecl>(Call->getCalleeDecl());
        // Operator calls count the object as argument 0; other members do not.
        if (Callee && isa<CXXOperatorCallExpr>(Call) && isa<CXXMethodDecl>(Callee)) {
          if (I == 0) return nullptr;
          --I;
        }
        return helperAttaching(Callee, I, Ctx, HelperDepth) ? Call : nullptr;
      }
      return nullptr;
    }
    if (!isWrapper(ParentStmt)) return nullptr;
    Current = *Parent;
  }
  return nullptr;
}

const CallExpr* AsyncScopeResolver::continuationCallOfVariable(const VarDecl* Var, ASTContext& Ctx,
                                                               unsigned HelperDepth) {
  if (!Var->hasLocalStorage()) return nullptr;
  // Search the function (or lambda) body that declares the variable.
  const Stmt* Body = nullptr;
  if (const auto* Function = dyn_cast<FunctionDecl>(Var->getDeclContext())) Body = Function->getBody();
  if (!Body) return nullptr;
  const VarUses& Uses = usesIn(Body);
  auto It = Uses.find(Var);
  if (It == Uses.end()) return nullptr;
  for (const DeclRefExpr* Use : It->second)
    if (const CallExpr* Call = callTakingAsArgument(Use, Ctx, HelperDepth)) return Call;
  return nullptr;
}

void AsyncScopeResolver::buildContinuationIndex(ASTContext& Ctx) {
  using namespace ast_matchers;
  IndexBuilt = true;
  auto Matcher = callExpr(anyOf(cxxMemberCallExpr(callee(cxxMethodDecl(hasAnyName(refs(Names.ContinuationMethods))))),
                                callExpr(callee(functionDecl(hasAnyName(refs(Names.ContinuationFunctions)))))))
                     .bind("call");
  std::vector<const CallExpr*> Calls;
  for (Decl* Root : UserCodeParents::instance().userDecls(Ctx, Names.IgnoredNamespaces))
    for (const BoundNodes& Match : match(decl(forEachDescendant(Matcher)), *Root, Ctx))
      Calls.push_back(Match.getNodeAs<CallExpr>("call"));
  for (const CallExpr* Call : Calls) {
    if (!isContinuationCall(Call)) continue;
    for (const Expr* Arg : Call->arguments()) {
      const Expr* Value = unwrap(Arg);
      if (const auto* Ref = dyn_cast_or_null<DeclRefExpr>(Value))
        if (const auto* Var = dyn_cast<VarDecl>(Ref->getDecl()); Var && Var->hasLocalStorage() && Var->getInit())
          Value = unwrap(Var->getInit());
      if (!Value) continue;
      if (const CXXRecordDecl* Record = Value->getType().getNonReferenceType()->getAsCXXRecordDecl();
          Record && !Record->isLambda())
        FunctorClasses.insert(Record->getCanonicalDecl());
      if (const auto* Factory = dyn_cast<CallExpr>(Value); Factory && !isWrapper(Factory))
        if (const FunctionDecl* Callee = Factory->getDirectCallee())
          FactoryCalls.try_emplace(Callee->getCanonicalDecl(), Call);
    }
  }
}

bool AsyncScopeResolver::isContinuationFunctor(const CXXRecordDecl* Record, ASTContext& Ctx) {
  if (!Record || Record->isLambda() || isInLibrary(Record)) return false;
  if (!IndexBuilt) buildContinuationIndex(Ctx);
  return FunctorClasses.contains(Record->getCanonicalDecl());
}

const CallExpr* AsyncScopeResolver::factoryCallReturning(const LambdaExpr* Lambda, ASTContext& Ctx) {
  DynTypedNode Current = DynTypedNode::create(*Lambda);
  for (unsigned Depth = 0; Depth < 8; ++Depth) {
    auto Parent = parentOf(Current, Ctx);
    if (!Parent) return nullptr;
    const auto* ParentStmt = Parent->get<Stmt>();
    if (isa_and_nonnull<ReturnStmt>(ParentStmt)) break;
    if (!ParentStmt || !isWrapper(ParentStmt)) return nullptr;
    Current = *Parent;
  }
  const auto* Function = dyn_cast_or_null<FunctionDecl>(Lambda->getLambdaClass()->getDeclContext());
  if (!Function || isLambdaCallOperator(Function) || isInLibrary(Function)) return nullptr;
  if (!IndexBuilt) buildContinuationIndex(Ctx);
  auto It = FactoryCalls.find(Function->getCanonicalDecl());
  return It == FactoryCalls.end() ? nullptr : It->second;
}

const CallExpr* AsyncScopeResolver::continuationCallOf(const LambdaExpr* Lambda, ASTContext& Ctx) {
  auto [It, Inserted] = ContinuationCache.try_emplace(Lambda, nullptr);
  if (!Inserted) return It->second;
  constexpr unsigned HelperDepth = 3;
  const CallExpr* Call = callTakingAsArgument(Lambda, Ctx, HelperDepth);
  if (!Call) {
    // `auto onValue = [&](...) {...}; future.thenAccept(onValue);`
    DynTypedNode Current = DynTypedNode::create(*Lambda);
    for (unsigned Depth = 0; Depth < 8; ++Depth) {
      auto Parent = parentOf(Current, Ctx);
      if (!Parent) break;
      if (const auto* Var = Parent->get<VarDecl>()) {
        Call = continuationCallOfVariable(Var, Ctx, HelperDepth);
        break;
      }
      const auto* ParentStmt = Parent->get<Stmt>();
      if (!ParentStmt || !isWrapper(ParentStmt)) break;
      Current = *Parent;
    }
  }
  if (!Call) Call = factoryCallReturning(Lambda, Ctx);
  // The cache entry may have moved while the variable's uses were resolved.
  ContinuationCache[Lambda] = Call;
  return Call;
}

bool AsyncScopeResolver::runsOnAnotherThread(const LambdaExpr* Lambda, ASTContext& Ctx) const {
  DynTypedNode Current = DynTypedNode::create(*Lambda);
  for (unsigned Depth = 0; Depth < 8; ++Depth) {
    auto Parent = parentOf(Current, Ctx);
    if (!Parent) return false;
    const auto* ParentStmt = Parent->get<Stmt>();
    if (!ParentStmt) return false;
    if (const auto* Construct = dyn_cast<CXXConstructExpr>(ParentStmt);
        Construct && isSameOrDerivedFrom(Construct->getConstructor()->getParent(), Names.OffThreadCallees))
      return true;
    if (const auto* Call = dyn_cast<CallExpr>(ParentStmt))
      if (const auto* Callee = dyn_cast_or_null<FunctionDecl>(Call->getCalleeDecl());
          Callee && matchesQualifiedName(Callee, Names.OffThreadCallees))
        return true;
    if (!isWrapper(ParentStmt)) return false;
    Current = *Parent;
  }
  return false;
}

const LambdaExpr* AsyncScopeResolver::lambdaOf(const Expr* Argument) {
  const Expr* E = unwrap(Argument);
  if (const auto* Ref = dyn_cast_or_null<DeclRefExpr>(E))
    if (const auto* Var = dyn_cast<VarDecl>(Ref->getDecl()); Var && Var->hasLocalStorage() && Var->getInit())
      E = unwrap(Var->getInit());
  return dyn_cast_or_null<LambdaExpr>(E);
}

bool AsyncScopeResolver::isAwaitedImmediately(const Expr* Call, ASTContext& Ctx) const {
  DynTypedNode Current = DynTypedNode::create(*Call);
  for (unsigned Depth = 0; Depth < 64; ++Depth) {
    auto Parent = parentOf(Current, Ctx);
    if (!Parent) return false;
    const auto* ParentStmt = Parent->get<Stmt>();
    if (!ParentStmt) return false;
    if (isa<CoawaitExpr, DependentCoawaitExpr>(ParentStmt)) return true;
    // Further links of the same chain: `.thenApply(...).thenAccept(...)`.
    const bool ChainLink =
        isa<MemberExpr>(ParentStmt) ||
        (isa<CXXMemberCallExpr>(ParentStmt) &&
         cast<CXXMemberCallExpr>(ParentStmt)->getImplicitObjectArgument()->IgnoreImplicit() == Current.get<Expr>());
    if (!ChainLink && !isWrapper(ParentStmt)) return false;
    Current = *Parent;
  }
  return false;
}

Scope AsyncScopeResolver::classify(const DynTypedNode& Node, ASTContext& Ctx) {
  ScopeKind Inner = ScopeKind::None;
  const CXXMethodDecl* Member = nullptr;
  const Decl* Outermost = Node.get<Decl>();
  DynTypedNode Current = Node;
  for (unsigned Depth = 0; Depth < 1024; ++Depth) {
    auto Parent = parentOf(Current, Ctx);
    if (!Parent) break;
    Current = *Parent;
    if (const auto* Lambda = Current.get<LambdaExpr>()) {
      if (Inner == ScopeKind::None) {
        if (continuationCallOf(Lambda, Ctx))
          Inner = ScopeKind::Continuation;
        else if (isTaskCoroutine(Lambda->getCallOperator()))
          Inner = ScopeKind::TaskCoroutine;
        else if (runsOnAnotherThread(Lambda, Ctx))
          return Scope{};  // its body is another thread's business
      }
      continue;
    }
    if (const auto* Function = Current.get<FunctionDecl>()) {
      // Generic lambdas: instantiated bodies hang off the closure's operator().
      if (isLambdaCallOperator(Function)) continue;
      Outermost = Function;
      if (Inner != ScopeKind::None) break;
      const auto* Method = dyn_cast<CXXMethodDecl>(Function);
      if (isTaskCoroutine(Function)) {
        Inner = ScopeKind::TaskCoroutine;
      } else if (Method && isUdfClass(Method->getParent())) {
        Inner = ScopeKind::UdfMember;
        Member = Method;
      } else if (Method && isCallOperator(Method) && isContinuationFunctor(Method->getParent(), Ctx)) {
        Inner = ScopeKind::Continuation;
      }
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
  return Scope{Inner, Member};
}

}  // namespace clang::tidy::asyncstate
