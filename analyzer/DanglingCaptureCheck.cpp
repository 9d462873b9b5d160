#include "DanglingCaptureCheck.h"

#include "utils/Defaults.h"
#include "utils/Matching.h"

#include "clang/AST/ASTContext.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

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

// The variable a by-reference init-capture (`[&k = key]`) binds to, when that
// is a local of the enclosing scope: the capture is as short-lived as `[&key]`.
const VarDecl* referencedLocal(const VarDecl* InitCapture) {
  const Expr* Init = InitCapture->getInit();
  if (!Init) return nullptr;
  const auto* Ref = dyn_cast<DeclRefExpr>(Init->IgnoreParenImpCasts());
  const ValueDecl* Target = Ref ? Ref->getDecl() : nullptr;
  if (const auto* Binding = dyn_cast_or_null<BindingDecl>(Target)) Target = Binding->getDecomposedDecl();
  const auto* Var = dyn_cast_or_null<VarDecl>(Target);
  return Var && Var->hasLocalStorage() ? Var : nullptr;
}

}  // namespace

DanglingCaptureCheck::DanglingCaptureCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context),
      SafeReferenceTypes(
          parseQualifiedNames(Options.getLocalOrGlobal("SafeReferenceTypes", defaults::SafeReferenceTypes))) {}

void DanglingCaptureCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "SafeReferenceTypes", serializeQualifiedNames(SafeReferenceTypes));
}

void DanglingCaptureCheck::registerMatchers(MatchFinder* Finder) {
  traverseUserCodeOnly(Finder);
  Finder->addMatcher(
      lambdaExpr(unless(isExpansionInSystemHeader()), hasAnyCapture(capturesVar(anything()))).bind("lambda"), this);
}

void DanglingCaptureCheck::check(const MatchFinder::MatchResult& Result) {
  const auto* Lambda = Result.Nodes.getNodeAs<LambdaExpr>("lambda");
  ASTContext& Ctx = *Result.Context;
  bool MayAlias = false;
  for (const LambdaCapture& Capture : Lambda->captures())
    MayAlias |=
        Capture.capturesVariable() && (Capture.getCaptureKind() == LCK_ByRef || Lambda->isInitCapture(&Capture));
  if (!MayAlias) return;
  const CallExpr* Call = Resolver.continuationCallOf(Lambda, Ctx);
  if (!Call || Resolver.isInLibrary(Lambda->getCallOperator())) return;
  // `co_await f.thenApply([&] {...})`: the coroutine frame outlives the chain.
  if (Resolver.isAwaitedImmediately(Call, Ctx)) return;

  for (const LambdaCapture& Capture : Lambda->captures()) {
    if (!Capture.capturesVariable()) continue;
    const ValueDecl* Captured = Capture.getCapturedVar();
    // A structured binding names part of its hidden decomposed variable.
    if (const auto* Binding = dyn_cast<BindingDecl>(Captured)) Captured = Binding->getDecomposedDecl();
    const auto* Var = dyn_cast_or_null<VarDecl>(Captured);
    if (!Var || !Var->hasLocalStorage()) continue;
    const NamedDecl* Named = Capture.getCapturedVar();
    if (Var->isInitCapture()) {
      // `[&k = key]` aliases `key`; `[k = key]` copies it.
      if (!Var->getType()->isReferenceType() || !(Var = referencedLocal(Var))) continue;
      Named = Var;
    } else if (Capture.getCaptureKind() != LCK_ByRef) {
      continue;
    }
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
        << AsyncScopeResolver::calleeName(Call) << Parameter << Named << Capture.isImplicit();
  }
}

}  // namespace clang::tidy::asyncstate
