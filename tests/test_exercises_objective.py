"""ddimlib.exercises.objective (notebook 02): each check passes a right answer, says "not attempted" for a blank one,
and gives the typical mistake's hint for a wrong one."""

from helpers import assert_each_mistake_gets_its_hint, blank

from ddimlib.exercises import objective as ex


def c_coefficient(alpha_t, alpha_prev, sigma_t):
    """The coefficient of x0 in the mean of Eq. 7, x_t held fixed."""
    return alpha_prev**0.5 - (1 - alpha_prev - sigma_t**2) ** 0.5 * (alpha_t / (1 - alpha_t)) ** 0.5


def gamma(alpha_t, alpha_prev, sigma_t, c_power=2, half=0.5):
    return half * c_coefficient(alpha_t, alpha_prev, sigma_t) ** c_power * (1 - alpha_t) / (sigma_t**2 * alpha_t)


def test_the_gamma_check():
    assert ex.check_gamma(gamma).passed
    assert not ex.check_gamma(blank).attempted and "Not attempted" in repr(ex.check_gamma(blank))
    wrong = {
        "the weight without c_t^2": lambda *a: gamma(*a, c_power=0),
        "the coefficient c_t of x0 enters squared": lambda *a: gamma(*a, c_power=1),
        "a factor 1/2 is missing": lambda *a: gamma(*a, half=1.0),
    }
    assert_each_mistake_gets_its_hint(ex.check_gamma, wrong)
    other = ex.check_gamma(lambda *a: gamma(*a) * (1.1 if a[0] < 1e-3 else 1.0))  # wrong at t = 1000 only
    assert not other.passed and "The largest relative difference is at t = 1000" in other.message, other


def test_the_vanishing_c_check():
    feedback = ex.check_where_c_vanishes(lambda alpha_t, alpha_prev: 1 - alpha_prev / alpha_t)
    assert feedback.passed and "negative at every step" in feedback.message, feedback
    assert not ex.check_where_c_vanishes(blank).attempted
    wrong = {
        "is beta_t (the ratio inverted)": lambda a_t, a_p: 1 - a_t / a_p,
        "c_t = sqrt(alpha_{t-1}), its largest value": lambda a_t, a_p: 1 - a_p,
        "wrong sign": lambda a_t, a_p: a_p / a_t - 1,
    }
    assert_each_mistake_gets_its_hint(ex.check_where_c_vanishes, wrong)
    other = ex.check_where_c_vanishes(lambda a_t, a_p: 0.0)  # sigma = 0: c_t is not zero there, and the check says so
    assert not other.passed and "c_t at your sigma_t^2 is" in other.message, other
