#include "SwallowedExceptionCheck.h"

#include "utils/Matching.h"

#include "clang/AST/ASTContext.h"
#include "clang/AST/RecursiveASTVisitor.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

constexpr const char* DefaultReportingFunctions =
    "([Ll]og|LOG|[Rr]eport|REPORT|[Ww]arn|WARN|[Ee]rror|ERROR|[Ff]ail|FAIL|[Pp]rint|[Tt]race|[Rr]ecord|"
    "[Nn]otify|[Ss]et_?[Ee]xception|rethrow|terminate|abort|exit|[Cc]ount|[Ii]ncrement|fetch_add|[Mm]etric)";
constexpr unsigned CatchKind = 0, CallbackKind = 1, HandlerKind = 2;

// Whether a body rethrows, uses the error/exception object, calls something that
// looks like reporting, or writes to the standard error streams.
class ReportFinder : public RecursiveASTVisitor<ReportFinder> {
 public:
  ReportFinder(const VarDecl* Error, const llvm::Regex& Reporting) : Error(Error), Reporting(Reporting) {}
  bool Found = false;

  bool VisitCXXThrowExpr(CXXThrowExpr*) { return !(Found = true); }
  bool VisitDeclRefExpr(DeclRefExpr* Ref) {
    const ValueDecl* D = Ref->getDecl();
    if (Error && D == Error) return !(Found = true);
    if (const auto* Var = dyn_cast<VarDecl>(D); Var && Var->isInStdNamespace() && Var->getDeclName().isIdentifier() &&
                                                (Var->getName() == "cerr" || Var->getName() == "clog"))
      return !(Found = true);
    if (const auto* Function = dyn_cast<FunctionDecl>(D);
        Function && Function->getDeclName().isIdentifier() && Reporting.match(Function->getName()))
      return !(Found = true);
    return true;
  }
  bool VisitMemberExpr(MemberExpr* Member) {
    const ValueDecl* D = Member->getMemberDecl();
    if (D->getDeclName().isIdentifier() && isa<CXXMethodDecl>(D) && Reporting.match(D->getName()))
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
  const llvm::Regex& Reporting;
};

// A use of the error pointer that only tests it for null decides nothing about
// the error itself: `if (error) return 0;` still drops it.
bool onlyTestedForNull(const DeclRefExpr* Ref, ASTContext& Ctx) {
  if (!Ref->getType()->isPointerType()) return false;
  DynTypedNode Current = DynTypedNode::create(*Ref);
  for (unsigned Depth = 0; Depth < 4; ++Depth) {
    auto Parents = Ctx.getParents(Current);
    if (Parents.empty()) return false;
    if (const auto* Cast = Parents[0].get<ImplicitCastExpr>()) {
      if (Cast->getCastKind() == CK_PointerToBoolean) return true;
      if (Cast->getCastKind() != CK_LValueToRValue && Cast->getCastKind() != CK_NoOp) return false;
    } else if (const auto* Unary = Parents[0].get<UnaryOperator>()) {
      return Unary->getOpcode() == UO_LNot;
    } else if (const auto* Binary = Parents[0].get<BinaryOperator>()) {
      return Binary->isEqualityOp();
    } else {
      return false;
    }
    Current = Parents[0];
  }
  return false;
}

class ErrorUseFinder : public RecursiveASTVisitor<ErrorUseFinder> {
 public:
  ErrorUseFinder(const ParmVarDecl* Error, ASTContext& Ctx) : Error(Error), Ctx(Ctx) {}
  bool Used = false;
  bool VisitDeclRefExpr(DeclRefExpr* Ref) {
    if (Ref->getDecl() == Error && !onlyTestedForNull(Ref, Ctx)) Used = true;
    return !Used;
  }

 private:
  const ParmVarDecl* Error;
  ASTContext& Ctx;
};

bool usesError(const ParmVarDecl* Error, const Stmt* Body, ASTContext& Ctx) {
  ErrorUseFinder Finder(Error, Ctx);
  Finder.TraverseStmt(const_cast<Stmt*>(Body));
  return Finder.Used;
}

}  // namespace

SwallowedExceptionCheck::SwallowedExceptionCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context),
      ErrorCallbackMethods(splitList(Options.get("ErrorCallbackMethods", "exceptionally;handle"))),
      ErrorActionTypes(readQualifiedNames(Options, "ErrorActionTypes", "::asyncstate::ErrorAction")),
      ContinueActions(splitList(Options.get("ContinueActions", "Continue"))),
      ReportingFunctions(Options.get("ReportingFunctions", DefaultReportingFunctions).str()),
      ReportingRegex(ReportingFunctions) {}

void SwallowedExceptionCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "ErrorCallbackMethods", joinList(ErrorCallbackMethods));
  Options.store(Opts, "ErrorActionTypes", joinQualifiedNames(ErrorActionTypes));
  Options.store(Opts, "ContinueActions", joinList(ContinueActions));
  Options.store(Opts, "ReportingFunctions", ReportingFunctions);
}

void SwallowedExceptionCheck::registerMatchers(MatchFinder* Finder) {
  const auto UserCode = unless(isExpansionInSystemHeader());
  // Catch blocks and handlers are checked in the template as written; their
  // instantiations (the library's own, mostly) would only repeat it.
  Finder->addMatcher(cxxCatchStmt(UserCode, unless(isInTemplateInstantiation())).bind("catch"), this);
  Finder->addMatcher(
      cxxMemberCallExpr(UserCode, callee(cxxMethodDecl(hasAnyName(refs(ErrorCallbackMethods))))).bind("callback"),
      this);
  Finder->addMatcher(lambdaExpr(UserCode, unless(isInTemplateInstantiation())).bind("lambda"), this);
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
  else if (const auto* Lambda = Result.Nodes.getNodeAs<LambdaExpr>("lambda"))
    checkErrorHandler(Lambda->getCallOperator(), Lambda->getBeginLoc());
  else if (const auto* Function = Result.Nodes.getNodeAs<FunctionDecl>("function"))
    checkErrorHandler(Function, Function->getLocation());
}

bool SwallowedExceptionCheck::reports(const Stmt* Body, const VarDecl* Error) const {
  ReportFinder Finder(Error, ReportingRegex);
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
  if (usesError(Error, Lambda->getBody(), Ctx)) return;
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
  if (usesError(Handler->getParamDecl(0), Body, Ctx) || reports(Body, nullptr)) return;
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
