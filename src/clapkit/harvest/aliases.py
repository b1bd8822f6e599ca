"""Words of game and desktop sound files that are not AudioSet names or synonyms, mapped to the class they mean.

One line per class: ``Class name: word word ...`` (words as they appear in file names, matched after light
stemming). ``IGNORED`` words never map through the ontology or MiniLM (they are ambiguous in file names: "fly" is
mostly aircraft, "mouse" mostly the computer's, "tank" a vehicle or a water tank). A test checks that every class
here exists in the bundled ontology.
"""

from __future__ import annotations

_TABLE = """
Explosion: explode explodes exploding explosion explosions explo expl exp blast bomb bombs detonate detonation kaboom
  grenade nuke dynamite tnt implosion
Gunshot, gunfire: gun guns gunshot gunshots shot shots shoot shooting pistol rifle shotgun musket revolver sniper
  handgun carbine
Machine gun: machinegun minigun chaingun smg mg uzi autogun
Artillery fire: cannon cannons artillery mortar howitzer
Cap gun: capgun
Arrow: arrows bow crossbow
Whoosh, swoosh, swish: swing swoosh woosh whoosh swish swipe whizz whiz swing swings flyby passby
Thump, thud: hit hits impact impacts thud thump punch bump bumps land landing knockdown body fall falls
Walk, footsteps: step steps footstep footsteps foot feet walk walking stomp tread
Run: running sprint jog
Splash, splatter: splash splashes splat splatter
Drip: drips dripping droplet droplets waterdrip
Gurgling: bubles bubble bubbles bubbling blub bubbly
Pour: pouring poured
Rain: rainfall raining drizzle shower
Thunderstorm: storm thunderstorm
Thunder: lightning thunderclap
Wind: windstorm breeze gust gusts windy blizzard snowstorm
Ocean: sea seashore coast beach
Waves, surf: wave surf wavecrash
Stream: river brook creek
Waterfall: cascade
Fire: flame flames burn burning campfire torch blaze bonfire fireplace
Crackle: embers ember crackling
Bird: ptak birds songbird sparrow robin blackbird lark finch nightingale parrot eagle hawk falcon vulture warbler
  thrush wren tit cardinal albatross booby emu flamingo heron pelican pheasant quail quetzal stork peacock toucan
  tucan iora
Bird vocalization, bird call, bird song: birdsong birdcall chirping tweeting
Chirp, tweet: chirps tweet tweets cheep
Crow: raven ravens crows
Gull, seagull: gulls seagulls
Chicken, rooster: hen hens chick chicks cockerel poultry
Crowing, cock-a-doodle-doo: cockadoodledoo
Dog: dogs puppy puppies hound doggy
Bark: barks barking woof
Canidae, dogs, wolves: wolf wolves coyote jackal fox
Cat: cats kitten kitty kittens
Meow: miaow mew
Horse: horses pony stallion mare foal
Clip-clop: gallop galloping hooves hoof canter trot
Neigh, whinny: neighs
Cattle, bovinae: cow cows bull bulls ox oxen calf cattle
Pig: pigs hog boar piglet swine
Sheep: lamb ram ewe
Goat: goats
Donkey, ass: mule
Frog: frogs toad toads
Insect: insects bug bugs weevil beetle
Cricket: cicadas crickets grasshopper cicada
Bee, wasp, etc.: bees hornet wasps bumblebee
Mosquito: mosquitoes
Snake: snakes rattlesnake serpent
Roaring cats (lions, tigers): lion lions tiger tigers leopard jaguar panther
Roar: roars roaring
Growling: growl growls snarl
Wild animals: panda elephant elephants monkey monkeys ape gorilla chimp bear bears deer moose elk camel rhino hippo
  giraffe zebra walrus sealion seal chimpanzee chinchilla hyena jerboa koala lynx otter porcupine raccoon
  rhinoceros wallaby badger hippopotamus wombat
Whale vocalization: whale whales dolphin orca
Rodents, rats, mice: rat rodent hamster squirrel
Laughter: laugh laughs laughing giggle cackle hehe haha
Screaming: scream screams shriek shrieks
Crying, sobbing: cry cries crying sob weep weeping
Baby cry, infant cry: baby babies infant
Sneeze: sneezes sneezing achoo
Cough: coughs coughing
Breathing: breath breathe breaths breathing inhale exhale
Snoring: snore snores
Gasp: gasps
Sigh: sighs
Yawn: yawns yawning
Burping, eructation: burp burps
Clapping: clap claps handclap
Applause: applaud
Cheering: cheer cheers hooray hurray
Booing: boo boos
Groan: pain hurt ouch oof groans
Chewing, mastication: eat eating chew munch chomp
Liquid: drink drinking sip gulp slurp swallow
Knock: knocks knocking
Door: doors gate gates
Creak: creaks creaking creaky
Squeak: squeaks squeaky
Slam: slams slamming
Doorbell: dingdong
Church bell: churchbell
Bell: bells
Clicking: tlacitko click clicks clicking clicky button buttons
Tick: ticks ticking
Clock: clocks
Alarm: alarms
Beep, bleep: beep beeps bleep bleeps blip blips
Telephone: phone phones cellphone
Ringtone: ring ringing rings
Computer keyboard: keyboard keyboards keystroke keypress
Typing: type typing
Vacuum cleaner: vacuum hoover
Toilet flush: toilet flush
Shatter: shatters shattering
Breaking: break breaks broken
Smash, crash: crash crashes smash
Helicopter: rotor rotors heli chopper helicopters
Chainsaw: chainsaws
Sawing: saw saws sawmill
Car: cars auto automobile
Engine: diesel petrol engines motor motors
Train: trains locomotive railway railroad
Fixed-wing aircraft, airplane: plane planes airplane aeroplane airliner
Jet engine: jet jets
Fireworks: firework
Truck: lorry trucks
Motorcycle: motorbike
Vehicle horn, car horn, honking: carhorn honk honks hooter klaxon
Siren: sirens
Hammer: hammers hammering anvil
Chop: axe battleaxe lumber lumbering woodcut woodcutting chopping
Drill: drilling
Bicycle: bike bicycles
Boat, Water vehicle: boats
Ship: ships
Coin (dropping): coins money cash
Camera: shutter
Typewriter: typewriters
Writing: pencil scribble
Scissors: snip
Rustle: rustling leaves bush bushes
Crunch: crunchy crumble
Squish: squelch
Whistle: whistles
Gong: gongs
Cymbal: cymbals ride
Hi-hat: hihat hat hats
Snare drum: snare snares
Bass drum: kick kicks kickdrum bassdrum
Drum: drums tom toms floortom bongo bongos conga congas djembe
Tambourine: tamb
Maraca: shaker shakers maracas
Cowbell: cowbells
Piano: pianos
Guitar: guit guitars
Electric guitar: eguitar
Violin, fiddle: violins
Synthesizer: synth synths
Choir: choirs
Flute: flutes
Trumpet: trumpets
Organ: organs
Harp: harps
Clarinet: clarinets
Saxophone: sax
Marimba, xylophone: xylo
Clang: clank clanks clang
Percussion: perc
Beatboxing: beatbox
Sizzle: sizzling
Traffic noise, roadway noise: traffic trafic
Rimshot: sidestick
Brass instrument: tuba tubas
Battle cry: warcry
"""

IGNORED = frozenset(
    "spaceship airship starship horn horns fly flies mouse tank bat bats mine mines pick record space rock rocks "
    "metal static echo noise silence "
    "drone rainbow gryphon griffin "
    "loop pulse song jingle country house funk disco opera techno grunge reggae blues jazz ska dub electro".split()
)


# word pairs that mean more together: (one of these, and one of those) anywhere in the path -> class
COMBOS: tuple[tuple[frozenset[str], frozenset[str], str], ...] = tuple(
    (frozenset(a.split()), frozenset(b.split()), name) for a, b, name in (
        ("glass glasses window", "break breaks broken breaking smash shatter crash", "Shatter"),
        ("rooster cock cockerel", "crow crows crowing", "Crowing, cock-a-doodle-doo"),
        ("water", "drop drops droplet droplets drip", "Drip"),
        ("door doors", "knock knocks knocking", "Knock"),
        ("baby babies infant", "cry cries crying", "Baby cry, infant cry"),
        ("car", "door doors", "Car"),
        ("wind winds", "howl howls howling", "Howl (wind)"),
        ("male female man woman men women human humans civ civilian civilians soldier soldiers civmale civfem",
         "death deaths die dies dying pain hurt", "Groan"),
    )
)


def alias_table() -> dict[str, str]:
    """word -> AudioSet class name."""
    table: dict[str, str] = {}
    current = None
    for raw in _TABLE.strip().splitlines():
        if not raw.startswith(" "):
            current, _, words = raw.partition(": ")
        else:
            words = raw
        for word in words.split():
            table.setdefault(word, current)
    return table
