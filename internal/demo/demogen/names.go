package demogen

// The built-in word lists the generator draws from. They are read-only
// tables: nothing writes to them after initialisation.

// culture is one naming tradition: the Demo Republic is a multi-national
// state, so a citizen's first and last names come from the same tradition.
type culture struct {
	male, female, last []string
}

var cultures = []culture{
	{ // Slavic
		male:   []string{"Pavel", "Tomáš", "Jan", "Lukáš", "Ivan", "Dmitri", "Marek", "Łukasz", "Bogdan", "Milan"},
		female: []string{"Ana", "Jana", "Petra", "Katarzyna", "Olga", "Milena", "Zuzana", "Irina", "Věra", "Lucie"},
		last:   []string{"Novák", "Horák", "Ivanova", "Kowalski", "Dvořák", "Petrov", "Wiśniewski", "Kovač", "Svoboda", "Popescu", "Marinković", "Černý"},
	},
	{ // Nordic and Germanic
		male:   []string{"Tomas", "Søren", "Erik", "Lars", "Jonas", "Felix", "Matthias", "Björn", "Henrik", "Jürgen"},
		female: []string{"Lena", "Ingrid", "Astrid", "Sofie", "Freya", "Greta", "Annika", "Liv", "Maja", "Katrin"},
		last:   []string{"Berg", "Lindqvist", "Müller", "Schmidt", "Hansen", "Johansson", "Nielsen", "Weber", "Fischer", "Åberg", "Strand", "Vogel"},
	},
	{ // Romance
		male:   []string{"José", "Marco", "Luis", "Pierre", "João", "Andrea", "Matteo", "Hugo", "Rafael", "Thiago"},
		female: []string{"Mira", "Lucía", "Chiara", "Camille", "Inês", "Sofía", "Elena", "Giulia", "Amélie", "Beatriz"},
		last:   []string{"Santos", "García", "Rossi", "Martin", "Silva", "Fernández", "Bianchi", "Dubois", "Moreau", "Costa", "Romero", "Ferreira"},
	},
	{ // West African
		male:   []string{"Chinedu", "Kwame", "Emeka", "Kofi", "Tunde", "Ibrahim", "Yaw", "Obinna", "Sekou", "Femi"},
		female: []string{"Lena", "Amara", "Ngozi", "Adaeze", "Abena", "Fatou", "Chiamaka", "Yewande", "Efua", "Aisha"},
		last:   []string{"Okafor", "Mensah", "Adeyemi", "Diallo", "Owusu", "Nwosu", "Balogun", "Traoré", "Asante", "Eze", "Boateng", "Keita"},
	},
	{ // South Asian
		male:   []string{"Arjun", "Rahul", "Vikram", "Sanjay", "Imran", "Rohan", "Anil", "Kiran", "Farhan", "Dev"},
		female: []string{"Priya", "Ananya", "Kavya", "Meera", "Sana", "Divya", "Nisha", "Aisha", "Lakshmi", "Ritu"},
		last:   []string{"Sharma", "Patel", "Iyer", "Khan", "Reddy", "Gupta", "Nair", "Chowdhury", "Das", "Menon", "Singh", "Rao"},
	},
	{ // East Asian
		male:   []string{"Hiroshi", "Wei", "Minjun", "Takeshi", "Jian", "Seojun", "Kenji", "Hao", "Jisung", "Ryo"},
		female: []string{"Yuki", "Mei", "Jiwoo", "Sakura", "Lin", "Haeun", "Aiko", "Xiu", "Minseo", "Hana"},
		last:   []string{"Tanaka", "Wang", "Kim", "Sato", "Li", "Park", "Suzuki", "Chen", "Lee", "Watanabe", "Zhang", "Choi"},
	},
	{ // Arabic and Turkish
		male:   []string{"Omar", "Yusuf", "Ahmed", "Karim", "Mehmet", "Hassan", "Emre", "Tariq", "Selim", "Nabil"},
		female: []string{"Layla", "Fatima", "Zeynep", "Noor", "Amira", "Elif", "Yasmin", "Rania", "Hiba", "Ayşe"},
		last:   []string{"Haddad", "Yılmaz", "Mansour", "Kaya", "Nasser", "Demir", "Khalil", "Öztürk", "Saleh", "Aziz", "Şahin", "Hamdan"},
	},
	{ // English-speaking
		male:   []string{"James", "Oliver", "Daniel", "Michael", "Samuel", "Thomas", "William", "George", "Patrick", "Aidan"},
		female: []string{"Emily", "Charlotte", "Grace", "Olivia", "Hannah", "Sarah", "Chloe", "Siobhan", "Emma", "Ruth"},
		last:   []string{"Smith", "Jones", "Taylor", "Brown", "Walsh", "Murphy", "Wilson", "Evans", "O'Brien", "Clarke", "Hughes", "Wright"},
	},
}

// city is a municipality of the Demo Republic with its postcode prefix and
// cadastral zones.
type city struct {
	name     string
	postcode int // first two digits of the five-digit postcode
	zones    []string
}

var cities = []city{
	{"Port Aster", 10, []string{"Old Harbour", "Lighthouse", "Castle Hill", "New Docks", "Saltmarsh"}},
	{"Eastmere", 20, []string{"Eastmere North", "Eastmere South", "Reedbank", "Millford"}},
	{"Valbruna", 30, []string{"Upper Town", "Lower Town", "Vineyards", "Ridgeway"}},
	{"Kestrel Bay", 40, []string{"Bayfront", "Cliffside", "Fisher's Row"}},
	{"Nová Hora", 50, []string{"Hora I", "Hora II", "Brook Meadows"}},
	{"Amberfield", 60, []string{"Amberfield Centre", "Orchards", "Windmill"}},
	{"San Lorenzo del Monte", 70, []string{"Monte Alto", "Monte Basso", "Olive Grove"}},
	{"Greyhaven", 80, []string{"Greyhaven Town", "Moorland", "Quarry"}},
	{"Lindau-on-Aster", 85, []string{"Riverside", "Lindenhof"}},
	{"Zarechye", 90, []string{"Zarechye East", "Zarechye West", "Birch Wood"}},
}

var streets = []string{
	"Linden Street", "Harbour Road", "Constitution Avenue", "Market Square", "Rosa Parks Street",
	"Mill Lane", "Chestnut Boulevard", "Station Road", "Independence Street", "Vineyard Way",
	"Ulica Kwiatowa", "Rua das Flores", "Via Roma", "Rue de la Paix", "Hauptstraße",
	"Church Lane", "Fishermen's Quay", "Old Town Walk", "Parliament Street", "Birch Alley",
	"Sakura Lane", "Cedar Road", "Embassy Row", "Garden Terrace",
}

var maritalStatuses = []string{"single", "married", "married", "divorced", "widowed", "registered partnership"}

var languages = []string{"en", "fr", "de", "cs", "pl", "es", "pt", "it", "tr", "ar", "hi", "zh", "ja", "ko", "yo", "sv"}

var landUses = []string{"residential", "arable", "arable", "pasture", "forest", "forest", "vineyard", "orchard", "commercial", "industrial", "garden", "water"}

var sectors = []struct{ name, word string }{
	{"agriculture", "Farms"},
	{"construction", "Builders"},
	{"manufacturing", "Works"},
	{"retail", "Trading"},
	{"hospitality", "Hospitality"},
	{"information technology", "Software"},
	{"logistics", "Logistics"},
	{"finance", "Capital"},
	{"health", "Clinic"},
	{"education", "Academy"},
	{"energy", "Energy"},
	{"fisheries", "Fisheries"},
	{"legal services", "Legal"},
	{"media", "Media"},
}

var legalForms = []string{"Ltd", "Ltd", "LLC", "& Sons", "Cooperative", "s.r.o.", "GmbH", "S.A.", "Partners", "Sole Trader"}

var actKinds = []string{"Act", "Act", "Act", "Decree", "Regulation", "Order"}

var actSubjects = []string{
	"the Protection of Personal Data", "the Population Register", "Identity Documents",
	"the Land Cadastre", "the Business Register", "Public Procurement", "the State Budget",
	"Continuity of Government", "Electronic Identification", "Notaries", "Local Government",
	"Fisheries and Coastal Waters", "Higher Education", "Public Health", "Road Traffic",
	"the Civil Service", "Digital Embassies", "Archives and Records", "Taxation of Income",
	"Elections", "Citizenship", "Emergency Powers", "the Courts", "Energy Security",
}

var actSentences = []string{
	"This {kind} lays down rules concerning {subject}.",
	"The competent authority shall keep records under this {kind} in electronic form and ensure their integrity and availability.",
	"Any person whose data are processed under this {kind} shall have the right of access and rectification.",
	"The Minister responsible shall issue implementing regulations within ninety days of the entry into force of this {kind}.",
	"Where the territory of the Republic is unavailable, the duties under this {kind} shall be performed by the digital embassy designated in the charter.",
	"Decisions taken under this {kind} may be appealed to the administrative court within thirty days.",
	"Fees collected under this {kind} shall be paid into the State Treasury.",
	"The register established by this {kind} is a public register unless the law provides otherwise.",
	"Infringements of this {kind} shall be punishable by a fine.",
	"This {kind} enters into force on the fifteenth day following its publication in the Official Gazette.",
	"Provisions of earlier legislation inconsistent with this {kind} are repealed.",
	"The State Chief Information Officer shall report annually to Parliament on the application of this {kind}.",
}
