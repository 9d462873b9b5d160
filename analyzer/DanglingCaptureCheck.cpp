#include "DanglingCaptureCheck.h"

#include "utils/Matching.h"

#include "clang/AST/ASTContext.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

// Runtime-owned objects that stay valid while the record's continuations run.
constexpr const char* DefaultSafeReferenceTypes =
    "::asyncstate::Collector;::asyncstate::RuntimeContext;::asyncstate::KeyedProcessFunction::Context";

// A local reference aliases an object that lives elsewhere, unless it was bound
// to a temporary and keeps that temporary alive only until the scope ends.
bool referenceOutlivesScope(const VarDecl* Var) {
  const Expr* Init = Var->getInit();
  while (Init) {
    if (const auto* Full = dyn_cast<FullExpr>(Init))
      Init = Full->getSubExpr();
    else if (const auto* Cast = dyn_cast<ImplicitCastExpr>(Init))
      Init = Cast->getSubExpr();
    else
      break;
  }
  return !isa_and_nonnull<MaterializeTemporaryExpr>(Init);
}

}  // namespace

DanglingCaptureCheck::DanglingCaptureCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context),
      SafeReferenceTypes(readQualifiedNames(Options, "SafeReferenceTypes", DefaultSafeReferenceTypes)) {}

void DanglingCaptureCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "SafeReferenceTypes", joinQualifiedNames(SafeReferenceTypes));
}

void DanglingCaptureCheck::registerMatchers(MatchFinder* Finder) {
  Finder->addMatcher(
      lambdaExpr(unless(isExpansionInSystemHeader()), hasAnyCapture(capturesVar(anything()))).bind("lambda"), this);
}

void DanglingCaptureCheck::check(const MatchFinder::MatchResult& Result) {
  const auto* Lambda = Result.Nodes.getNodeAs<LambdaExpr>("lambda");
  ASTContext& Ctx = *Result.Context;
  bool HasByReference = false;
  for (const LambdaCapture& Capture : Lambda->captures())
    HasByReference |= Capture.capturesVariable() && Capture.getCaptureKind() == LCK_ByRef;
  if (!HasByReference) return;
  const CXXMemberCallExpr* Call = Resolver.continuationCallOf(Lambda, Ctx);
  if (!Call || Resolver.isInLibrary(Lambda->getCallOperator())) return;
  // `co_await f.thenApply([&] {...})`: the coroutine frame outlives the chain.
  if (AsyncScopeResolver::isAwaitedImmediately(Call, Ctx)) return;

  for (const LambdaCapture& Capture : Lambda->captures()) {
    if (!Capture.capturesVariable() || Capture.getCaptureKind() != LCK_ByRef) continue;
    const auto* Var = dyn_cast<VarDecl>(Capture.getCapturedVar());
    if (!Var || !Var->hasLocalStorage()) continue;
    const bool Parameter = isa<ParmVarDecl>(Var);
    if (Var->getType()->isReferenceType()) {
      if (!Parameter && referenceOutlivesScope(Var)) continue;
      if (isSameOrDerivedFrom(pointeeRecord(Var->getType()), SafeReferenceTypes)) continue;
    }
    const SourceLocation Loc = Capture.getLocation();
    if (!Reported.firstTime(Loc, 0)) continue;
    diag(Loc,
         "continuation passed to '%0' captures %select{local variable|parameter}1 %2 by reference%select{| "
         "(through [&])}3; it runs after the enclosing scope returned, capture it by value or move it in")
        << Call->getMethodDecl()->getName() << Parameter << Var << Capture.isImplicit();
  }
}

}  // namespace clang::tidy::asyncstate
