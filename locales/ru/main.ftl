# latchkey — русский

nav-label = Учётная запись
nav-language = Язык
nav-settings = Настройки
nav-sign-in = Войти
nav-sign-up = Зарегистрироваться
nav-sign-out = Выйти
signed-in-as = Вы вошли как { $email }

home-title = Добро пожаловать в latchkey
home-intro = Войдите один раз и позвольте приложениям, которым вы доверяете, действовать от вашего имени.
home-welcome = Здравствуйте, { $name }! Вы вошли в систему.

field-email = Электронная почта
field-password = Пароль
field-name = Имя
field-given-name = Имя (личное)
field-family-name = Фамилия
field-display-name = Отображаемое имя
field-slack-id = Slack ID
field-github-username = Имя пользователя GitHub
field-timezone = Часовой пояс
field-current-password = Текущий пароль
field-new-password = Новый пароль
password-hint = Не меньше 8 символов.

login-title = Вход
login-submit = Войти
login-failed = Неверная электронная почта или пароль.
login-no-account = Ещё нет учётной записи?

signup-title = Создайте учётную запись
signup-submit = Создать учётную запись
signup-have-account = Уже есть учётная запись?

setup-title = Создание первого администратора
setup-intro = Эта одноразовая ссылка создаёт учётную запись администратора этого сервера latchkey.
setup-submit = Создать администратора
setup-invalid = Ссылка для настройки недействительна, устарела или уже использована.

settings-title = Настройки
settings-profile = Профиль
settings-save-profile = Сохранить профиль
settings-password = Пароль
settings-change-password = Сменить пароль
settings-profile-saved = Профиль сохранён.
settings-password-changed = Пароль изменён. Остальные сеансы завершены.

error-email-invalid = Введите правильный адрес электронной почты.
error-email-taken = Учётная запись с этим адресом уже существует.
error-password-short = Используйте не меньше 8 символов.
error-password-long = Пароль слишком длинный.
error-password-wrong = Текущий пароль указан неверно.
error-too-long = Слишком длинное значение.
error-invalid-characters = Значение содержит недопустимые символы.
error-timezone-invalid = Укажите часовой пояс, например UTC или Europe/Moscow.

error-code = Ошибка
error-retry = Попробовать снова
error-home = На главную
error-400-title = Неверный запрос
error-400 = Запрос не удалось понять. Проверьте адрес или форму и попробуйте снова.
error-403-title = Доступ запрещён
error-403 = У вас нет права на это действие.
error-404-title = Не найдено
error-404 = По этому адресу ничего нет.
error-405-title = Метод не поддерживается
error-405 = Этот адрес не принимает такой запрос.
error-413-title = Слишком большой запрос
error-413 = Запрос слишком большой.
error-415-title = Неподдерживаемый формат
error-415 = Запрос отправлен в формате, который эта страница не принимает.
error-429-title = Слишком много попыток
error-429 = Слишком много попыток. Подождите немного и попробуйте снова.
error-500-title = Что-то пошло не так
error-500 = На нашей стороне произошла ошибка. Попробуйте позже.
error-csrf-title = Срок действия формы истёк
error-csrf = Срок действия формы истёк, или она отправлена с другого сайта. Обновите страницу и попробуйте снова.
error-registration-closed-title = Регистрация закрыта
error-registration-closed = Этот сервер не принимает новые учётные записи. Обратитесь к его администратору.
