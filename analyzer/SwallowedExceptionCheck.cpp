#include "SwallowedExceptionCheck.h"

#include "utils/Defaults.h"
#include "utils/Matching.h"

#include "clang/AST/ASTContext.h"
#include "clang/AST/RecursiveASTVisitor.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

constexpr unsigned CatchKind = 0, CallbackKind = 1, HandlerKind = 2;

// Whether a body rethrows, uses the error/exception object, calls something that
// looks like reporting, or writes to the standard error streams.
class ReportFinder : public RecursiveASTVisitor<ReportFinder> {
 public:
  ReportFinder(const VarDecl* Error, const ReportingNames& Reporting) : Error(Error), Reporting(Reporting) {}
  bool Found = false;

  bool VisitCXXThrowExpr(CXXThrowExpr*) { return !(Found = true); }
  bool VisitDeclRefExpr(DeclRefExpr* Ref) {
    const ValueDecl* D = Ref->getDecl();
    if (Error && D == Error) return !(Found = true);
    if (const auto* Var = dyn_cast<VarDecl>(D); Var && Var->isInStdNamespace() && Var->getDeclName().isIdentifier() &&
                                                (Var->getName() == "cerr" || Var->getName() == "clog"))
      return !(Found = true);
    if (const auto* Function = dyn_cast<FunctionDecl>(D);
        Function && Function->getDeclName().isIdentifier() && Reporting.matches(Function->getName()))
      return !(Found = true);
    return true;
  }
  bool VisitMemberExpr(MemberExpr* Member) {
    const ValueDecl* D = Member->getMemberDecl();
    if (D->getDeclName().isIdentifier() && isa<CXXMethodDecl>(D) && Reporting.matches(D->getName()))
      return !(Found = true);
    return true;
  }
  // Counting a failure into a member or a global is reporting it (to metrics).
  bool VisitUnaryOperator(UnaryOperator* Op) {
    if (Op->isIncrementDecrementOp() && outlivesHandler(Op->getSubExpr())) return !(Found = true);
    return true;
  }
  bool VisitBinaryOperator(BinaryOperator* Op) {
    if (Op->isAssignmentOp() && outlivesHandler(Op->getLHS())) return !(Found = true);
    return true;
  }
  bool VisitCallExpr(CallExpr* Call) {
    if (const auto* Op = dyn_cast<CXXOperatorCallExpr>(Call);
        Op && Op->getNumArgs() > 0 &&
        (Op->isAssignmentOp() || Op->getOperator() == OO_PlusPlus || Op->getOperator() == OO_MinusMinus) &&
        outlivesHandler(Op->getArg(0)))
      return !(Found = true);
    if (const auto* Callee = dyn_cast_or_null<FunctionDecl>(Call->getCalleeDecl());
        Callee && Callee->isInStdNamespace() && Callee->getDeclName().isIdentifier() &&
        (Callee->getName() == "current_exception" || Callee->getName() == "rethrow_exception"))
      return !(Found = true);
    return true;
  }

 private:
  static bool outlivesHandler(const Expr* E) {
    E = E->IgnoreParenImpCasts();
    if (isa<MemberExpr>(E)) return true;
    if (const auto* Ref = dyn_cast<DeclRefExpr>(E))
      if (const auto* Var = dyn_cast<VarDecl>(Ref->getDecl())) return Var->hasGlobalStorage();
    return false;
  }

  const VarDecl* Error;
  const ReportingNames& Reporting;
};

// How a callback uses the error it receives.
enum class ErrorUse {
  Tested,     // only asks whether there is one: `if (error)`, `r.failed()`
  ValueRead,  // reads an Outcome's value, which rethrows a failure nothing tested for
  Handled,    // reads, rethrows, passes on or returns the error
};

// A use of the error pointer that only tests it for null decides nothing about
// the error itself: `if (error) return 0;` still drops it.
bool onlyTestedForNull(const DeclRefExpr* Ref, ASTContext& Ctx, const AsyncScopeResolver& Resolver) {
  if (!Ref->getType()->isPointerType()) return false;
  DynTypedNode Current = DynTypedNode::create(*Ref);
  for (unsigned Depth = 0; Depth < 4; ++Depth) {
    auto Parent = Resolver.parentOf(Current, Ctx);
    if (!Parent) return false;
    if (const auto* Cast = Parent->get<ImplicitCastExpr>()) {
      if (Cast->getCastKind() == CK_PointerToBoolean) return true;
      if (Cast->getCastKind() != CK_LValueToRValue && Cast->getCastKind() != CK_NoOp) return false;
    } else if (const auto* Unary = Parent->get<UnaryOperator>()) {
      return Unary->getOpcode() == UO_LNot;
    } else if (const auto* Binary = Parent->get<BinaryOperator>()) {
      return Binary->isEqualityOp();
    } else {
      return false;
    }
    Current = *Parent;
  }
  return false;
}

class ErrorUseFinder : public RecursiveASTVisitor<ErrorUseFinder> {
 public:
  ErrorUseFinder(const ParmVarDecl* Error, ASTContext& Ctx, const AsyncScopeResolver& Resolver,
                 const SwallowedExceptionCheck::OutcomeVocabulary& Outcome)
      : Error(Error),
        Ctx(Ctx),
        Resolver(Resolver),
        Outcome(Outcome),
        IsOutcome(matchesQualifiedName(namedClassOf(Error->getType().getNonReferenceType()), Outcome.Types)) {}
  bool Tested = false, ValueRead = false, Handled = false;
  bool VisitDeclRefExpr(DeclRefExpr* Ref) {
    if (Ref->getDecl() != Error) return true;
    switch (useOf(Ref)) {
      case ErrorUse::Tested: Tested = true; break;
      case ErrorUse::ValueRead: ValueRead = true; break;
      case ErrorUse::Handled: Handled = true; break;
    }
    return !Handled;
  }

 private:
  ErrorUse useOf(const DeclRefExpr* Ref) const {
    if (IsOutcome) return outcomeUse(Ref);
    return onlyTestedForNull(Ref, Ctx, Resolver) ? ErrorUse::Tested : ErrorUse::Handled;
  }

  // An Outcome holds the error by value: `r.failed()`, `if (r)` and `r.value()` never
  // look at it; `r.error()`, passing `r` on or returning it do.
  ErrorUse outcomeUse(const DeclRefExpr* Ref) const {
    DynTypedNode Current = DynTypedNode::create(*Ref);
    for (unsigned Depth = 0; Depth < 4; ++Depth) {
      auto Parent = Resolver.parentOf(Current, Ctx);
      if (!Parent) return ErrorUse::Handled;
      if (const auto* Cast = Parent->get<ImplicitCastExpr>();
          (Cast && (Cast->getCastKind() == CK_NoOp || Cast->getCastKind() == CK_LValueToRValue)) ||
          Parent->get<ParenExpr>()) {
        Current = *Parent;
        continue;
      }
      const auto* Member = Parent->get<MemberExpr>();
      if (!Member) return ErrorUse::Handled;
      const ValueDecl* D = Member->getMemberDecl();
      if (isa<CXXConversionDecl>(D)) return ErrorUse::Tested;
      if (!D->getDeclName().isIdentifier()) return ErrorUse::Handled;
      if (contains(Outcome.TestMethods, D->getName())) return ErrorUse::Tested;
      if (contains(Outcome.ValueMethods, D->getName())) return ErrorUse::ValueRead;
      return ErrorUse::Handled;
    }
    return ErrorUse::Handled;
  }

  const ParmVarDecl* Error;
  ASTContext& Ctx;
  const AsyncScopeResolver& Resolver;
  const SwallowedExceptionCheck::OutcomeVocabulary& Outcome;
  const bool IsOutcome;
};

// Whether D sits in an instantiated template (judged by its declaration
// contexts, which needs no parent map).
bool inTemplateInstantiation(const Decl* D) {
  for (const DeclContext* Ctx = D->getDeclContext(); Ctx; Ctx = Ctx->getParent()) {
    if (const auto* Function = dyn_cast<FunctionDecl>(Ctx);
        Function && isTemplateInstantiation(Function->getTemplateSpecializationKind()))
      return true;
    if (const auto* Record = dyn_cast<CXXRecordDecl>(Ctx);
        Record && isTemplateInstantiation(Record->getTemplateSpecializationKind()))
      return true;
  }
  return false;
}

// Reading an Outcome's value without testing it first lets value() rethrow the
// failure: that passes the error on. After a test, the failure path is the test's.
bool usesError(const ParmVarDecl* Error, const Stmt* Body, ASTContext& Ctx, const AsyncScopeResolver& Resolver,
               const SwallowedExceptionCheck::OutcomeVocabulary& Outcome) {
  ErrorUseFinder Finder(Error, Ctx, Resolver, Outcome);
  Finder.TraverseStmt(const_cast<Stmt*>(Body));
  return Finder.Handled || (Finder.ValueRead && !Finder.Tested);
}

}  // namespace

SwallowedExceptionCheck::SwallowedExceptionCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context),
      ErrorCallbackMethods(parseList(Options.get("ErrorCallbackMethods", defaults::ErrorCallbackMethods))),
      ErrorActionTypes(parseQualifiedNames(Options.getLocalOrGlobal("ErrorActionTypes", defaults::ErrorActionTypes))),
      ContinueActions(parseList(Options.get("ContinueActions", defaults::ContinueActions))),
      Reporting(parseList(Options.get("ReportingWords", defaults::ReportingWords))),
      Outcome{parseQualifiedNames(Options.getLocalOrGlobal("OutcomeTypes", defaults::OutcomeTypes)),
              parseList(Options.get("OutcomeTestMethods", defaults::OutcomeTestMethods)),
              parseList(Options.get("OutcomeValueMethods", defaults::OutcomeValueMethods))} {}

void SwallowedExceptionCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "ErrorCallbackMethods", serializeList(ErrorCallbackMethods));
  Options.store(Opts, "ErrorActionTypes", serializeQualifiedNames(ErrorActionTypes));
  Options.store(Opts, "ContinueActions", serializeList(ContinueActions));
  Options.store(Opts, "ReportingWords", serializeList(Reporting.words()));
  Options.store(Opts, "OutcomeTypes", serializeQualifiedNames(Outcome.Types));
  Options.store(Opts, "OutcomeTestMethods", serializeList(Outcome.TestMethods));
  Options.store(Opts, "OutcomeValueMethods", serializeList(Outcome.ValueMethods));
}

void SwallowedExceptionCheck::registerMatchers(MatchFinder* Finder) {
  traverseUserCodeOnly(Finder);
  const auto UserCode = unless(isExpansionInSystemHeader());
  // Catch blocks are checked in template instantiations too: only there does a
  // dependent call resolve to a continuation (a class-template UDF, a function
  // template, a generic lambda). ReportedOnce folds the instantiations together.
  Finder->addMatcher(cxxCatchStmt(UserCode).bind("catch"), this);
  Finder->addMatcher(
      cxxMemberCallExpr(UserCode, callee(cxxMethodDecl(hasAnyName(refs(ErrorCallbackMethods))))).bind("callback"),
      this);
  // Error-handler lambdas are checked as written; instantiations would repeat them.
  Finder->addMatcher(lambdaExpr(UserCode).bind("lambda"), this);
  Finder->addMatcher(functionDecl(UserCode, isDefinition(), unless(ast_matchers::isTemplateInstantiation()),
                                  unless(cxxMethodDecl(ofClass(isLambda()))))
                         .bind("function"),
                     this);
}

void SwallowedExceptionCheck::check(const MatchFinder::MatchResult& Result) {
  ASTContext& Ctx = *Result.Context;
  if (const auto* Catch = Result.Nodes.getNodeAs<CXXCatchStmt>("catch"))
    checkCatch(Catch, Ctx);
  else if (const auto* Call = Result.Nodes.getNodeAs<CXXMemberCallExpr>("callback"))
    checkErrorCallback(Call, Ctx);
  else if (const auto* Lambda = Result.Nodes.getNodeAs<LambdaExpr>("lambda");
           Lambda && !inTemplateInstantiation(Lambda->getLambdaClass()))
    checkErrorHandler(Lambda->getCallOperator(), Lambda->getBeginLoc());
  else if (const auto* Function = Result.Nodes.getNodeAs<FunctionDecl>("function"))
    checkErrorHandler(Function, Function->getLocation());
}

bool SwallowedExceptionCheck::reports(const Stmt* Body, const VarDecl* Error) const {
  ReportFinder Finder(Error, Reporting);
  Finder.TraverseStmt(const_cast<Stmt*>(Body));
  return Finder.Found;
}

void SwallowedExceptionCheck::checkCatch(const CXXCatchStmt* Catch, ASTContext& Ctx) {
  if (!Resolver.classify(*Catch, Ctx).runsAsContinuation() ||
      reports(Catch->getHandlerBlock(), Catch->getExceptionDecl()) ||
      !Reported.firstTime(Catch->getBeginLoc(), CatchKind))
    return;
  const auto* Block = dyn_cast<CompoundStmt>(Catch->getHandlerBlock());
  diag(Catch->getBeginLoc(),
       "%select{empty|non-reporting}0 catch block in a continuation drops the failure; let it "
       "propagate to exceptionally()/handle(), rethrow it, or report it")
      << (Block && !Block->body_empty());
}

void SwallowedExceptionCheck::checkErrorCallback(const CXXMemberCallExpr* Call, ASTContext& Ctx) {
  if (!Resolver.isContinuationCall(Call) || Call->getNumArgs() == 0) return;
  const LambdaExpr* Lambda = AsyncScopeResolver::lambdaOf(Call->getArg(Call->getNumArgs() - 1));
  if (!Lambda || Resolver.isInLibrary(Lambda->getCallOperator())) return;
  const CXXMethodDecl* Operator = Lambda->getCallOperator();
  if (Operator->getNumParams() == 0) return;
  const StringRef Method = Call->getMethodDecl()->getName();
  // exceptionally(f): f(error); handle(f): f(value, error) or f(error) for void.
  const ParmVarDecl* Error =
      Method == "exceptionally" ? Operator->getParamDecl(0) : Operator->getParamDecl(Operator->getNumParams() - 1);
  if (usesError(Error, Lambda->getBody(), Ctx, Resolver, Outcome)) return;
  // An unnamed parameter has no name to point at; point at its type.
  const SourceLocation Loc = Error->getIdentifier() ? Error->getLocation() : Error->getBeginLoc();
  if (!Reported.firstTime(Loc, CallbackKind)) return;
  diag(Loc,
       "%0() callback ignores the error it receives; inspect, report or rethrow it, or the "
       "failure vanishes here")
      << Method;
}

void SwallowedExceptionCheck::checkErrorHandler(const FunctionDecl* Handler, SourceLocation Loc) {
  if (!Handler || Handler->getNumParams() == 0 || !Handler->hasBody() || Resolver.isInLibrary(Handler)) return;
  const QualType Returned = Handler->getReturnType();
  if (Returned.isNull() || Returned->isDependentType()) return;
  const auto* Enum = Returned.getCanonicalType()->getAsTagDecl();
  if (!Enum || !matchesQualifiedName(Enum, ErrorActionTypes)) return;
  ASTContext& Ctx = Handler->getASTContext();
  const Stmt* Body = Handler->getBody();
  if (usesError(Handler->getParamDecl(0), Body, Ctx, Resolver, Outcome) || reports(Body, nullptr)) return;
  bool Continues = false;
  for (const BoundNodes& Use :
       match(findAll(declRefExpr(to(enumConstantDecl(hasAnyName(refs(ContinueActions))))).bind("action")), *Body, Ctx))
    Continues |= Use.getNodeAs<DeclRefExpr>("action") != nullptr;
  if (!Continues || !Reported.firstTime(Loc, HandlerKind)) return;
  diag(Loc,
       "error handler ignores the error and continues; failures vanish without a trace; log or count them, "
       "or return ErrorAction::FailTask");
}

}  // namespace clang::tidy::asyncstate
