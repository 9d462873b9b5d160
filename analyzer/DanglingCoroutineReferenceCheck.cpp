#include "DanglingCoroutineReferenceCheck.h"

#include "utils/Defaults.h"
#include "utils/Matching.h"

#include "clang/AST/ASTContext.h"
#include "clang/AST/RecursiveASTVisitor.h"
#include "clang/AST/StmtCXX.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

constexpr unsigned ArgumentKind = 0, LambdaKind = 1;

// Whether the coroutine body reads Parameter after it may have suspended: a use
// after the first co_await in source order, or a use in a loop that awaits.
class UseAfterSuspension : public RecursiveASTVisitor<UseAfterSuspension> {
 public:
  UseAfterSuspension(const ParmVarDecl* Parameter, const SourceManager& SM) : Parameter(Parameter), SM(SM) {}

  bool found(Stmt* Body) {
    TraverseStmt(Body);
    for (SourceLocation Use : Uses) {
      for (SourceLocation Suspension : Suspensions)
        if (SM.isBeforeInTranslationUnit(Suspension, Use)) return true;
      for (SourceRange Loop : AwaitingLoops)
        if (Loop.fullyContains(SourceRange(Use))) return true;
    }
    return false;
  }

  bool shouldVisitLambdaBody() const { return false; }
  bool VisitCoawaitExpr(CoawaitExpr* Await) { return suspendsAt(Await->getBeginLoc()); }
  bool VisitCoyieldExpr(CoyieldExpr* Yield) { return suspendsAt(Yield->getBeginLoc()); }
  bool VisitDeclRefExpr(DeclRefExpr* Ref) {
    if (Ref->getDecl() == Parameter) Uses.push_back(Ref->getBeginLoc());
    return true;
  }
  bool TraverseForStmt(ForStmt* Loop) {
    return traverseLoop(Loop, [&] { return Base::TraverseForStmt(Loop); });
  }
  bool TraverseWhileStmt(WhileStmt* Loop) {
    return traverseLoop(Loop, [&] { return Base::TraverseWhileStmt(Loop); });
  }
  bool TraverseDoStmt(DoStmt* Loop) {
    return traverseLoop(Loop, [&] { return Base::TraverseDoStmt(Loop); });
  }
  bool TraverseCXXForRangeStmt(CXXForRangeStmt* Loop) {
    return traverseLoop(Loop, [&] { return Base::TraverseCXXForRangeStmt(Loop); });
  }

 private:
  using Base = RecursiveASTVisitor<UseAfterSuspension>;

  bool suspendsAt(SourceLocation Loc) {
    Suspensions.push_back(Loc);
    return true;
  }
  template <class F>
  bool traverseLoop(Stmt* Loop, F Traverse) {
    const size_t Before = Suspensions.size();
    const bool Result = Traverse();
    if (Suspensions.size() > Before) AwaitingLoops.push_back(Loop->getSourceRange());
    return Result;
  }

  const ParmVarDecl* Parameter;
  const SourceManager& SM;
  std::vector<SourceLocation> Uses, Suspensions;
  std::vector<SourceRange> AwaitingLoops;
};

bool readAfterSuspension(const FunctionDecl* Coroutine, const ParmVarDecl* Parameter) {
  const auto* Body = dyn_cast_or_null<CoroutineBodyStmt>(Coroutine->getBody());
  if (!Body) return false;
  return UseAfterSuspension(Parameter, Coroutine->getASTContext().getSourceManager()).found(Body->getBody());
}

// A temporary of class type the argument refers to (string_view from a
// temporary string): it is destroyed at the end of the full-expression. A default
// argument (`const std::string& label = "anonymous"`) makes its temporary in the
// caller's full-expression too.
bool refersToTemporary(const Expr* Argument) {
  const Expr* E = Argument;
  while (isa<ImplicitCastExpr, ParenExpr>(E))
    E = isa<ParenExpr>(E) ? cast<ParenExpr>(E)->getSubExpr() : cast<ImplicitCastExpr>(E)->getSubExpr();
  if (const auto* Default = dyn_cast<CXXDefaultArgExpr>(E)) return refersToTemporary(Default->getExpr());
  if (const auto* Temporary = dyn_cast<MaterializeTemporaryExpr>(E))
    return Temporary->getStorageDuration() == SD_FullExpression;
  if (const auto* Conversion = dyn_cast<CXXMemberCallExpr>(E))  // operator string_view()
    return refersToTemporary(Conversion->getImplicitObjectArgument());
  if (const auto* Construct = dyn_cast<CXXConstructExpr>(E); Construct && Construct->getNumArgs() >= 1)
    return refersToTemporary(Construct->getArg(0));
  return false;
}

// A local of a function that is not itself a coroutine: it dies when the
// function returns, while the coroutine it was lent to may still be suspended.
const VarDecl* shortLivedLocal(const Expr* Argument, const FunctionDecl* Caller) {
  const auto* Ref = dyn_cast<DeclRefExpr>(Argument->IgnoreParenImpCasts());
  const auto* Var = Ref ? dyn_cast<VarDecl>(Ref->getDecl()) : nullptr;
  if (!Var || !Var->hasLocalStorage() || Var->getType()->isReferenceType() || !Caller ||
      isa_and_nonnull<CoroutineBodyStmt>(Caller->getBody()))
    return nullptr;
  return Var;
}

const FunctionDecl* enclosingFunction(const Expr* E, ASTContext& Ctx, const AsyncScopeResolver& Resolver) {
  DynTypedNode Current = DynTypedNode::create(*E);
  for (unsigned Depth = 0; Depth < 256; ++Depth) {
    auto Parent = Resolver.parentOf(Current, Ctx);
    if (!Parent) return nullptr;
    Current = *Parent;
    if (const auto* Function = Current.get<FunctionDecl>()) return Function;
    if (const auto* Lambda = Current.get<LambdaExpr>()) return Lambda->getCallOperator();
  }
  return nullptr;
}

// `[..]() -> Task<> {...}()`: the closure is a temporary of the statement.
const CallExpr* immediateInvocation(const LambdaExpr* Lambda, ASTContext& Ctx, const AsyncScopeResolver& Resolver) {
  DynTypedNode Current = DynTypedNode::create(*Lambda);
  for (unsigned Depth = 0; Depth < 8; ++Depth) {
    auto Parent = Resolver.parentOf(Current, Ctx);
    if (!Parent) return nullptr;
    const auto* ParentExpr = Parent->get<Expr>();
    if (const auto* Call = dyn_cast_or_null<CXXOperatorCallExpr>(ParentExpr))
      return Call->getOperator() == OO_Call && Call->getArg(0)->IgnoreImplicit() == Lambda ? Call : nullptr;
    if (!isa_and_nonnull<ImplicitCastExpr, MaterializeTemporaryExpr, CXXBindTemporaryExpr, ParenExpr>(ParentExpr))
      return nullptr;
    Current = *Parent;
  }
  return nullptr;
}

}  // namespace

DanglingCoroutineReferenceCheck::DanglingCoroutineReferenceCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context), ViewTypes(parseQualifiedNames(Options.get("ViewTypes", defaults::ViewTypes))) {}

void DanglingCoroutineReferenceCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "ViewTypes", serializeQualifiedNames(ViewTypes));
}

void DanglingCoroutineReferenceCheck::registerMatchers(MatchFinder* Finder) {
  traverseUserCodeOnly(Finder);
  std::vector<std::string> Tasks;
  for (const std::string& Name : Names.TaskTypes) Tasks.push_back("::" + Name);
  const auto UserCode = unless(isExpansionInSystemHeader());
  const auto ReturnsTask = returns(
      hasCanonicalType(hasDeclaration(cxxRecordDecl(ast_matchers::isSameOrDerivedFrom(hasAnyName(refs(Tasks)))))));
  Finder->addMatcher(callExpr(UserCode, callee(functionDecl(ReturnsTask))).bind("call"), this);
  Finder->addMatcher(lambdaExpr(UserCode, hasAnyCapture(anything())).bind("lambda"), this);
}

void DanglingCoroutineReferenceCheck::check(const MatchFinder::MatchResult& Result) {
  if (const auto* Call = Result.Nodes.getNodeAs<CallExpr>("call"))
    checkCall(Call, *Result.Context);
  else if (const auto* Lambda = Result.Nodes.getNodeAs<LambdaExpr>("lambda"))
    checkLambda(Lambda, *Result.Context);
}

bool DanglingCoroutineReferenceCheck::isBorrowing(QualType ParameterType) const {
  if (ParameterType->isReferenceType()) return true;
  const CXXRecordDecl* Record = ParameterType.getCanonicalType()->getAsCXXRecordDecl();
  return Record && isSameOrDerivedFrom(Record, ViewTypes);
}

void DanglingCoroutineReferenceCheck::checkCall(const CallExpr* Call, ASTContext& Ctx) {
  const FunctionDecl* Callee = Call->getDirectCallee();
  const FunctionDecl* Definition = Callee ? Callee->getDefinition() : nullptr;
  if (!Definition || !Resolver.isTaskCoroutine(Definition) || Resolver.isAwaitedImmediately(Call, Ctx)) return;
  const unsigned Shift = isa<CXXOperatorCallExpr>(Call) && isa<CXXMethodDecl>(Callee) ? 1 : 0;
  const FunctionDecl* Caller = nullptr;
  for (unsigned I = Shift; I < Call->getNumArgs() && I - Shift < Definition->getNumParams(); ++I) {
    const ParmVarDecl* Parameter = Definition->getParamDecl(I - Shift);
    const Expr* Argument = Call->getArg(I);
    if (!isBorrowing(Parameter->getType())) continue;
    const bool Temporary = refersToTemporary(Argument);
    const VarDecl* Local = nullptr;
    if (!Temporary && Parameter->getType()->isReferenceType()) {
      if (!Caller) Caller = enclosingFunction(Call, Ctx, Resolver);
      Local = shortLivedLocal(Argument, Caller);
    }
    if ((!Temporary && !Local) || !readAfterSuspension(Definition, Parameter)) continue;
    // A default argument is not written at the call: point where it would be.
    const bool Default = isa<CXXDefaultArgExpr>(Argument->IgnoreParenImpCasts());
    const SourceLocation Loc = Default ? Call->getRParenLoc() : Argument->getBeginLoc();
    if (!Reported.firstTime(Loc, ArgumentKind)) continue;
    if (Temporary)
      diag(Loc,
           "temporary %select{bound to|created by the default argument of}3 %select{reference|view}0 parameter %1 "
           "of coroutine %2 is destroyed at the end of this statement, but the coroutine reads it after a "
           "suspension; take the parameter by value, or co_await the call here")
          << !Parameter->getType()->isReferenceType() << Parameter << Definition << Default;
    else
      diag(Loc,
           "local variable %0 bound to reference parameter %1 of coroutine %2 goes out of scope when %3 returns, "
           "but the coroutine reads it after a suspension; take the parameter by value")
          << Local << Parameter << Definition << Caller;
  }
}

void DanglingCoroutineReferenceCheck::checkLambda(const LambdaExpr* Lambda, ASTContext& Ctx) {
  if (!Resolver.isTaskCoroutine(Lambda->getCallOperator()) || Resolver.isInLibrary(Lambda->getCallOperator())) return;
  const CallExpr* Invocation = immediateInvocation(Lambda, Ctx, Resolver);
  if (!Invocation || Resolver.isAwaitedImmediately(Invocation, Ctx)) return;
  if (!Reported.firstTime(Lambda->getBeginLoc(), LambdaKind)) return;
  diag(Lambda->getBeginLoc(),
       "coroutine lambda with captures is destroyed at the end of the statement that starts it, while the "
       "coroutine may still be suspended and reads its captures from the closure; pass them as parameters "
       "by value instead");
}

}  // namespace clang::tidy::asyncstate
